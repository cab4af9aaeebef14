"""Lookup without a decision (issue 14, point 3): hash media, look a hash or a file up in
the banks, compare two hashes, through the library (amber.lookup), the command line
(amber hash, lookup, compare) and the API (/v1/hash, /v1/lookup, /v1/compare), on a real
SQLite database; URLs are fetched from a real server on 127.0.0.1. After each, no
decision, no evidence and no review item exists."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from amber.api.app import SETTINGS_ENV, app_from_env, create_app
from amber.engine import Engine, open_engine
from amber.errors import NotFoundError, SignalValueError, UserError
from amber.lookup import compare, hash_media, lookup_hash, lookup_media, lookup_values
from amber.signals import Role, SignalValue, load_signal_types
from amber.store.tables import (
    decision_versions,
    decisions,
    media_signals,
    post_media,
    review_locks,
    review_outcomes,
)
from amber.synthetic import photo, video
from amber.tokens import parse_scopes
from conftest import run_cli
from media_server import MediaServer, media_server


@dataclass
class State:
    root: Path
    db: str
    vault: Path
    engine: Engine
    photo: Path  # banked in "known"
    mirrored: bytes  # a re-upload of it: mirrored, saved as JPEG
    clip: Path  # banked in "clips"
    pdq: str  # the banked photo's
    tokens: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return {"AMBER_DB": self.db, "AMBER_VAULT": str(self.vault)}


def _encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    root = tmp_path_factory.mktemp("lookup")
    original = photo(11, 320, 240)
    banked = root / "known.png"
    banked.write_bytes(_encoded(original, "PNG"))
    clip = video(root / "clip.mp4", 5, width=160, height=120, fps=10, seconds=3, scene_seconds=1.5)
    db, vault = str(root / "amber.db"), root / "vault"
    with open_engine(db=db, vault=vault) as engine:
        engine.banks.create("known", label="execution-photo")
        engine.banks.create("other")
        engine.banks.create("clips")
        assert engine.banks.add_files("known", [banked]).added
        assert engine.banks.add_files("clips", [clip]).added
        tokens = {
            name: engine.tokens.create(name, parse_scopes(scopes))[1]
            for name, scopes in (("ingest", "ingest"), ("review", "review"))
        }
        own = hash_media(engine, banked.read_bytes(), "known.png")
        pdq = next(v.value for v in own.values if v.signal_type == "pdq")
        yield State(
            root,
            db,
            vault,
            engine,
            banked,
            _encoded(ImageOps.mirror(original), "JPEG"),
            clip,
            pdq,
            tokens,
        )


@pytest.fixture(scope="module")
def server(state: State) -> Iterator[MediaServer]:
    with media_server(state.photo.read_bytes()) as running:
        yield running


def nothing_kept(state: State) -> None:
    """No decision, no evidence, no review item: lookups leave no trace but the index."""
    engine = state.engine
    assert engine.decisions.count() == 0
    assert engine.review.items() == []
    with engine.db.connect() as conn:
        for table in (
            decisions,
            decision_versions,
            post_media,
            media_signals,
            review_locks,
            review_outcomes,
        ):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    kept = [p for p in state.vault.rglob("*") if p.is_file()] if state.vault.exists() else []
    assert kept == []


# The library


def test_hash_media_gives_the_files_own_hashes(state: State) -> None:
    data = state.photo.read_bytes()
    hashes = hash_media(state.engine, data, "known.png")
    by_type = {v.signal_type: v for v in hashes.values}
    assert set(by_type) == {"sha256", "md5", "pdq"}  # its own: no rotations, no views
    assert by_type["sha256"].value == hashlib.sha256(data).hexdigest()
    assert by_type["md5"].value == hashlib.md5(data).hexdigest()
    assert by_type["pdq"].quality is not None and by_type["pdq"].quality >= 50
    assert (hashes.name, hashes.size, hashes.width, hashes.height) == (
        "known.png",
        len(data),
        320,
        240,
    )
    assert hashes.undecoded is None and not hashes.truncated
    # The engine's types, or a registry's: the same values; the bank side's too, for a photo.
    assert hash_media(load_signal_types(), data, "known.png") == hashes
    assert hash_media(state.engine, data, "known.png", role=Role.bank).values == hashes.values
    assert hashes.to_json()["signals"][2] == {
        "signal_type": "pdq",
        "value": by_type["pdq"].value,
        "quality": by_type["pdq"].quality,
        "variant": "original",
    }


def test_a_file_that_is_not_media_gets_its_exact_hashes_and_the_reason(state: State) -> None:
    hashes = hash_media(state.engine, b"just words", "notes.txt")
    assert [v.signal_type for v in hashes.values] == ["sha256", "md5"]
    assert hashes.undecoded is not None and "not an image" in hashes.undecoded


def test_a_videos_hashes_are_its_frames(state: State) -> None:
    hashes = hash_media(state.engine, state.clip.read_bytes(), "clip.mp4")
    kinds = {v.signal_type for v in hashes.values}
    assert kinds == {"sha256", "md5", "vpdq"}
    frames = [f for f in hashes.to_json()["signals"] if f["signal_type"] == "vpdq"]
    assert len(frames) >= 2
    assert all(f["variant"].startswith("original@") for f in frames)
    assert frames[0]["time"] == 0.0 and frames[0]["frame"] == 0


def test_lookup_media_matches_as_a_post_would(state: State) -> None:
    found = lookup_media(state.engine, state.mirrored, "copy.jpg")
    assert [(m.bank, m.signal_type) for m in found.matches] == [("known", "pdq")]
    match = found.to_json()["matches"][0]
    assert match["label"] == "execution-photo" and match["action"] == "remove"
    # A mirrored copy: found through a view of one side or the other, as in a post.
    assert "original" in (match["query_variant"], match["entry_variant"])
    assert (match["query_variant"], match["entry_variant"]) != ("original", "original")
    assert match["distance"] <= 31
    assert found.banks is None and found.to_json()["banks"] is None
    # Only its own values are shown; every view was looked up.
    assert {v.variant for v in found.hashes.values} == {"original"}
    assert lookup_media(state.engine, state.mirrored, "copy.jpg", banks=["other"]).matches == ()
    nothing_kept(state)


def test_lookup_media_of_a_banked_video(state: State) -> None:
    found = lookup_media(state.engine, state.clip.read_bytes(), "clip.mp4", banks=["clips"])
    banks = {m["bank"] for m in found.to_json()["matches"]}
    assert banks == {"clips"}
    assert any("video" in m for m in found.to_json()["matches"])
    nothing_kept(state)


def test_lookup_hash(state: State) -> None:
    found = lookup_hash(state.engine, "pdq", state.pdq.upper())
    assert [m.bank for m in found.matches] == ["known"]
    assert found.hashes.values == (SignalValue("pdq", state.pdq, 100),)  # canonical, vouched
    assert found.to_json()["name"] is None
    assert lookup_hash(state.engine, "pdq", state.pdq, banks=["other"]).matches == ()
    # A hash of too low a quality cannot match, as a post's could not.
    assert lookup_hash(state.engine, "pdq", state.pdq, quality=10).matches == ()
    md5 = hashlib.md5(state.photo.read_bytes()).hexdigest()
    assert [m.signal_type for m in lookup_hash(state.engine, "md5", md5).matches] == ["md5"]
    assert lookup_hash(state.engine, "md5", md5).hashes.values[0].quality is None
    nothing_kept(state)


def test_lookup_values_uses_the_matcher(state: State) -> None:
    values = [SignalValue("pdq", state.pdq, 90)]
    assert [m.bank for m in lookup_values(state.engine, values)] == ["known"]
    assert lookup_values(state.engine, values, banks=["known", "known"])[0].bank == "known"
    assert lookup_values(state.engine, [SignalValue("pdq", state.pdq, 10)]) == []
    nothing_kept(state)


def test_lookup_errors_name_what_was_wrong(state: State) -> None:
    with pytest.raises(SignalValueError, match="pdq value 'xyz': expected 64 hexadecimal"):
        lookup_hash(state.engine, "pdq", "xyz")
    with pytest.raises(UserError, match="unknown signal type 'pqd'; use one of md5, orb, pdq"):
        lookup_hash(state.engine, "pqd", state.pdq)
    with pytest.raises(UserError, match="'harm_poll' is not a hash of media"):
        lookup_hash(state.engine, "harm_poll", "x")
    with pytest.raises(NotFoundError, match="no bank called 'nope'"):
        lookup_hash(state.engine, "pdq", state.pdq, banks=["nope"])
    with pytest.raises(UserError, match="quality 101"):
        lookup_hash(state.engine, "pdq", state.pdq, quality=101)


def test_compare(state: State) -> None:
    flipped = f"{int(state.pdq, 16) ^ 0b111:064x}"  # 3 bits apart
    near = compare(state.engine, "pdq", state.pdq, flipped)
    assert (near.distance, near.threshold, near.matches) == (3, 31, True)
    far = compare(load_signal_types(), "pdq", state.pdq, "0" * 64)
    assert far.distance > 31 and not far.matches
    assert near.to_json() == {
        "signal_type": "pdq",
        "signals": [state.pdq, flipped],
        "distance": 3,
        "threshold": 31,
        "matches": True,
    }
    assert compare(state.engine, "md5", "A" * 32, "a" * 32).matches
    with pytest.raises(SignalValueError, match="md5 value 'x'"):
        compare(state.engine, "md5", "x", "a" * 32)


# The command line


def test_cli_hash(state: State) -> None:
    data = state.photo.read_bytes()
    done = run_cli("hash", state.photo, "--format", "jsonl", env=state.env)
    assert done.returncode == 0, done.stderr
    expected = hash_media(load_signal_types(), data, str(state.photo)).to_json()
    assert json.loads(done.stdout) == expected  # the one JSON form
    text = run_cli("hash", state.photo, state.clip, env=state.env)
    assert text.returncode == 0, text.stderr
    assert f"pdq     {state.pdq}  quality" in text.stdout
    assert "(320x240," in text.stdout
    assert "vpdq" in text.stdout and "at 1.000 s" in text.stdout
    failed = run_cli("hash", state.root / "missing.png", state.photo, env=state.env)
    assert failed.returncode == 1
    assert "Error: " in failed.stderr and "missing.png: file not found" in failed.stderr
    assert state.pdq in failed.stdout  # the other file was hashed
    assert "Traceback" not in failed.stderr
    nothing = run_cli("hash", env=state.env)
    assert nothing.returncode == 2 and "give a file to hash, or --url" in nothing.stderr


def test_cli_hash_a_url(state: State, server: MediaServer) -> None:
    refused = run_cli("hash", "--url", server.url("/photo.png"))
    assert refused.returncode == 1
    assert "127.0.0.1, which is loopback" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = run_cli(
        "hash", "--url", server.url("/photo.png"), "--allow-private", "--format", "jsonl"
    )
    assert done.returncode == 0, done.stderr
    hashed = json.loads(done.stdout)
    assert hashed["name"] == server.url("/photo.png")
    assert (
        hashed["signals"]
        == hash_media(state.engine, state.photo.read_bytes(), "x").to_json()["signals"]
    )
    too_big = run_cli("hash", "--url", server.url("/declares-huge"), "--allow-private")
    assert too_big.returncode == 1 and "Content too large" in too_big.stderr


def test_cli_lookup(state: State) -> None:
    found = run_cli("lookup", state.pdq, env=state.env)
    assert found.returncode == 0, found.stderr
    assert f"pdq {state.pdq}: 1 match" in found.stdout and "execution-photo" in found.stdout
    copy = state.root / "copy.jpg"
    copy.write_bytes(state.mirrored)
    as_json = run_cli("lookup", copy, "--format", "jsonl", env=state.env)
    assert as_json.returncode == 0, as_json.stderr
    assert (
        json.loads(as_json.stdout)
        == lookup_media(state.engine, state.mirrored, str(copy)).to_json()
    )
    other = run_cli("lookup", state.pdq, "--bank", "other", env=state.env)
    assert other.returncode == 0 and "no match in other" in other.stdout
    md5 = hashlib.md5(state.photo.read_bytes()).hexdigest()
    typed = run_cli("lookup", md5, "--signal-type", "md5", "--format", "jsonl", env=state.env)
    assert [m["bank"] for m in json.loads(typed.stdout)["matches"]] == ["known"]
    nothing_kept(state)


def test_cli_lookup_refuses_clearly(state: State) -> None:
    bad = run_cli("lookup", "not-a-hash.jpg", state.pdq, env=state.env)
    assert bad.returncode == 1
    assert "'not-a-hash.jpg' is not a file, nor a pdq hash" in bad.stderr
    assert "--signal-type" in bad.stderr and "1 match" in bad.stdout
    no_bank = run_cli("lookup", state.pdq, "--bank", "nope", env=state.env)
    assert no_bank.returncode == 2 and "Error: no bank called 'nope'" in no_bank.stderr
    no_type = run_cli("lookup", state.pdq, "--signal-type", "pqd", env=state.env)
    assert no_type.returncode == 2 and "unknown signal type 'pqd'" in no_type.stderr
    for result in (bad, no_bank, no_type):
        assert "Traceback" not in result.stderr
    nothing_kept(state)


def test_cli_compare() -> None:
    a, b = "f" * 64, "f" * 63 + "0"
    text = run_cli("compare", a, b)
    assert text.returncode == 0 and text.stdout.strip() == "pdq distance 4 (threshold 31): match"
    as_json = run_cli("compare", a, "0" * 64, "--format", "jsonl")
    assert json.loads(as_json.stdout)["matches"] is False
    bad = run_cli("compare", "x", b)
    assert bad.returncode == 2 and "Error: pdq value 'x'" in bad.stderr


# The API


@pytest.fixture(scope="module")
def api(state: State) -> Iterator[TestClient]:
    app = create_app(state.engine, max_body=4_000_000, sweep_every=None)
    with TestClient(app, headers={"authorization": f"Bearer {state.tokens['ingest']}"}) as client:
        yield client


@pytest.fixture(scope="module")
def open_api(state: State) -> Iterator[TestClient]:
    """The API of a server started with --allow-private-urls."""
    app = create_app(state.engine, sweep_every=None, allow_private_urls=True)
    with TestClient(app, headers={"authorization": f"Bearer {state.tokens['ingest']}"}) as client:
        yield client


def test_api_hash(state: State, api: TestClient) -> None:
    data = state.photo.read_bytes()
    done = api.post("/v1/hash", files={"file": ("photo.png", data, "image/png")})
    assert done.status_code == 200, done.text
    assert done.json() == hash_media(state.engine, data, "photo.png").to_json()
    for body, why in (
        ({"files": {"other": ("a.png", data, "image/png")}}, "no field 'file'"),
        ({"data": {"file": "text"}, "files": {"x": ("a", b"", "text/plain")}}, "must be the"),
        ({"json": {}}, "url: Field required"),
        ({"json": {"url": 5}}, "url: Input should be a valid string"),
        ({"content": b"{not json"}, "expected the multipart field 'file' or JSON"),
    ):
        refused = api.post("/v1/hash", **body)  # type: ignore[arg-type]
        assert refused.status_code == 400, refused.text
        assert why in refused.json()["error"]["message"]
    nothing_kept(state)


def test_api_hash_a_url(
    state: State, api: TestClient, open_api: TestClient, server: MediaServer
) -> None:
    url = server.url("/photo.png")
    refused = api.post("/v1/hash", json={"url": url})
    assert refused.status_code == 400
    assert "127.0.0.1, which is loopback" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "FetchRefusedError"
    done = open_api.post("/v1/hash", json={"url": url})
    assert done.status_code == 200, done.text
    assert done.json() == hash_media(state.engine, server.photo, url).to_json()
    for path, status, words in (
        ("/declares-huge", 413, "Content too large"),
        ("/missing", 502, "answered HTTP 404"),
        ("/page.html", 400, "only images and videos"),
        ("/to-localhost", 200, ""),  # allowed servers may redirect to each other
    ):
        answer = open_api.post("/v1/hash", json={"url": server.url(path)})
        assert answer.status_code == status, (path, answer.text)
        if words:
            assert words in answer.json()["error"]["message"]
    nothing_kept(state)


def test_api_lookup_a_hash(state: State, api: TestClient) -> None:
    found = api.get("/v1/lookup", params={"signal_type": "pdq", "signal": state.pdq})
    assert found.status_code == 200, found.text
    assert found.json() == lookup_hash(state.engine, "pdq", state.pdq).to_json()
    assert [m["bank"] for m in found.json()["matches"]] == ["known"]
    only = api.get("/v1/lookup", params={"signal": state.pdq, "bank": ["other", "clips"]})
    assert only.json()["matches"] == [] and only.json()["banks"] == ["other", "clips"]
    weak = api.get("/v1/lookup", params={"signal": state.pdq, "quality": 10})
    assert weak.json()["matches"] == []
    for params, status, words in (
        ({"signal": state.pdq, "bank": "nope"}, 404, "no bank called 'nope'"),
        ({"signal": "xyz"}, 400, "pdq value 'xyz'"),
        ({"signal": "x", "signal_type": "harm_poll"}, 400, "not a hash of media"),
        ({"signal": state.pdq, "quality": 500}, 422, "quality"),
        ({}, 422, "signal"),
    ):
        refused = api.get("/v1/lookup", params=params)
        assert refused.status_code == status, (params, refused.text)
        assert words in refused.json()["error"]["message"]
    nothing_kept(state)


def test_api_lookup_a_file(state: State, api: TestClient, open_api: TestClient) -> None:
    found = api.post("/v1/lookup", files={"file": ("copy.jpg", state.mirrored, "image/jpeg")})
    assert found.status_code == 200, found.text
    assert found.json() == lookup_media(state.engine, state.mirrored, "copy.jpg").to_json()
    assert [m["bank"] for m in found.json()["matches"]] == ["known"]
    elsewhere = api.post(
        "/v1/lookup?bank=other", files={"file": ("copy.jpg", state.mirrored, "image/jpeg")}
    )
    assert elsewhere.json()["matches"] == [] and elsewhere.json()["banks"] == ["other"]
    missing = api.post(
        "/v1/lookup?bank=nope", files={"file": ("copy.jpg", state.mirrored, "image/jpeg")}
    )
    assert missing.status_code == 404
    nothing_kept(state)


def test_api_lookup_a_url(state: State, open_api: TestClient, server: MediaServer) -> None:
    found = open_api.post("/v1/lookup", json={"url": server.url("/photo.png")})
    assert found.status_code == 200, found.text
    assert [m["bank"] for m in found.json()["matches"]] == ["known", "known", "known"]
    assert {m["signal_type"] for m in found.json()["matches"]} == {"sha256", "md5", "pdq"}
    nothing_kept(state)


def test_api_compare(state: State, api: TestClient) -> None:
    done = api.post("/v1/compare", json={"signal_type": "pdq", "signals": [state.pdq, state.pdq]})
    assert done.status_code == 200
    assert done.json() == compare(state.engine, "pdq", state.pdq, state.pdq).to_json()
    assert api.post("/v1/compare", json={"signals": [state.pdq]}).status_code == 422
    bad = api.post("/v1/compare", json={"signals": [state.pdq, "nope"]})
    assert bad.status_code == 400 and "pdq value 'nope'" in bad.json()["error"]["message"]


def test_api_lookups_need_the_ingest_scope(state: State, api: TestClient) -> None:
    reviewer = {"authorization": f"Bearer {state.tokens['review']}"}
    for method, path in (
        ("POST", "/v1/hash"),
        ("GET", f"/v1/lookup?signal={state.pdq}"),
        ("POST", "/v1/lookup"),
        ("POST", "/v1/compare"),
    ):
        assert api.request(method, path, headers=reviewer).status_code == 403, path
        assert api.request(method, path, headers={"authorization": ""}).status_code == 401, path


def test_serve_carries_allow_private_urls_to_its_workers(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {
        "db": state.db,
        "vault": str(state.vault),
        "policy": None,
        "media_root": None,
        "max_body": 1_000_000,
    }
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))
    app = app_from_env()
    assert app.state.allow_private_urls is False
    app.state.engine.close()
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({**settings, "allow_private_urls": True}))
    app = app_from_env()
    assert app.state.allow_private_urls is True
    app.state.engine.close()
    assert "--allow-private-urls" in run_cli("serve", "--help").stdout
