"""amber's HMA-compatible API (``/h``, ``/m``, ``/c``, ``/status``) in process: amber's
tokens on HMA's routes and the anonymous flag, HMA's roles, error body and shapes, amber's
matching rules under HMA's names, settings carried to workers, and a fuzz run over the
face's own OpenAPI description. HMA's own tests run against it in test_hma_peer.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from amber.api.app import SETTINGS_ENV, app_from_env, create_app
from amber.api.hma import HmaRole, HmaSettings
from amber.api.hma.status import openapi_spec
from amber.engine import Engine, open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes

PDQ = "f" * 64
NEAR = "f" * 62 + "00"  # 8 bits from PDQ


def _client(app: FastAPI, token: str | None = None) -> TestClient:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return TestClient(app, headers=headers)


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    return {
        name: engine.tokens.create(name, parse_scopes(name))[1]
        for name in ("ingest", "review", "admin")
    }


def _jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    photo(seed, 320, 240).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_tokens_guard_hma_routes(engine: Engine, tokens: dict[str, str]) -> None:
    app = create_app(engine, sweep_every=None)
    anonymous, ingest, review, admin = (
        _client(app, tokens.get(n)) for n in ("none", "ingest", "review", "admin")
    )
    refused = anonymous.get("/c/banks")
    assert refused.status_code == 401 and set(refused.json()) == {"message"}
    assert refused.headers["www-authenticate"] == 'Bearer realm="amber"'
    assert (
        anonymous.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": PDQ}).status_code
        == 401
    )
    # the curator changes banks: admin; the hasher and the matcher only read: ingest
    assert ingest.post("/c/banks", json={"name": "B"}).status_code == 403
    assert review.get("/m/index/status").status_code == 403
    assert admin.post("/c/banks", json={"name": "B"}).status_code == 201
    assert ingest.get("/m/index/status").status_code == 200
    assert ingest.post("/m/compare", json={"pdq": [PDQ, NEAR]}).json() == {
        "pdq": [True, {"distance": 8}]
    }
    # liveness, readiness and the description need no token
    assert anonymous.get("/status").text == "I-AM-ALIVE"
    assert anonymous.get("/status/live").text == "I-AM-ALIVE"
    description = anonymous.get("/openapi/openapi.json").json()
    assert description["info"]["title"] == "Open Media Match API"
    assert "/c/bank/{bank_name}/content/{content_id}" in description["paths"]
    # HMA's routes have their own description, not amber's
    assert not any(p.startswith(("/c/", "/m/", "/h/")) for p in app.openapi()["paths"])
    events = engine.banks.audit("B")
    assert events[0].actor == "token:admin"


def test_anonymous_flag_opens_hma_routes_only(engine: Engine, tokens: dict[str, str]) -> None:
    app = create_app(engine, sweep_every=None, hma=HmaSettings(anonymous=True))
    anonymous = _client(app)
    assert anonymous.post("/c/banks", json={"name": "OPEN"}).status_code == 201
    assert engine.banks.audit("OPEN")[0].actor == "anonymous"
    assert anonymous.get("/c/banks").json() == [{"matching_enabled_ratio": 1.0, "name": "OPEN"}]
    assert anonymous.get("/v1/banks").status_code == 401  # amber's own API still needs one
    bad = anonymous.get("/c/banks", headers={"authorization": "Bearer amber_nope"})
    assert bad.status_code == 401  # a token given is checked
    wrong = _client(app, tokens["ingest"]).post("/c/banks", json={"name": "OTHER"})
    assert wrong.status_code == 403


def test_roles_a_server_leaves_out(engine: Engine, tokens: dict[str, str]) -> None:
    no_hasher = HmaSettings(roles=frozenset({HmaRole.matcher, HmaRole.curator}))
    client = _client(create_app(engine, sweep_every=None, hma=no_hasher), tokens["admin"])
    assert client.get("/h/hash", params={"url": "https://example.com/a.jpg"}).status_code == 404
    lookup = client.get("/m/lookup", params={"url": "https://example.com/a.jpg"})
    assert lookup.status_code == 403 and "hasher" in lookup.json()["message"]
    upload = client.post("/m/lookup", files={"photo": ("a.jpg", _jpeg(1), "image/jpeg")})
    assert upload.status_code == 403
    matcher_only = HmaSettings(roles=frozenset({HmaRole.matcher}))
    app = create_app(engine, sweep_every=None, hma=matcher_only)
    assert _client(app, tokens["admin"]).get("/c/banks").status_code == 404
    app.state.hma_index_state = lambda engine: (
        __import__("amber.api.hma.status", fromlist=["IndexState"]).IndexState.stale
    )
    stale = _client(app).get("/status")
    assert (stale.status_code, stale.text) == (503, "INDEX-STALE")
    assert _client(app).get("/status/live").status_code == 200


def test_hma_error_bodies(engine: Engine, tokens: dict[str, str]) -> None:
    app = create_app(engine, sweep_every=None, max_body=2048)
    admin = _client(app, tokens["admin"])
    assert (
        admin.post("/c/banks", json={"name": "lower"})
        .json()["message"]
        .startswith("bank name 'lower' is not allowed")
    )
    assert admin.post("/c/banks", json={"name": "9_LIVES"}).status_code == 400
    assert admin.post("/c/banks", json={"name": "TAKEN"}).status_code == 201
    taken = admin.post("/c/banks", json={"name": "TAKEN"})
    assert taken.status_code == 403 and set(taken.json()) == {"message"}
    malformed = admin.post("/c/banks", json={"name": 7})
    assert malformed.status_code == 400 and "name" in malformed.json()["message"]
    big = admin.post("/c/bank/TAKEN/signal", content=b"{" + b" " * 4096 + b"}")
    assert big.status_code == 413 and set(big.json()) == {"message"}
    nul = admin.get("/c/bank/TA%00KEN")
    assert nul.status_code == 400 and set(nul.json()) == {"message"}
    assert admin.get("/c/bank/NOPE").status_code == 404
    assert admin.get("/c/nothing-here").json() == {"message": "Not Found"}
    assert admin.delete("/c/bank/NOPE").json() == {"message": "Done"}  # as HMA: done anyway
    # amber's own routes keep amber's body
    assert set(admin.get("/v1/banks/NOPE").json()) == {"error"}


def test_content_and_matches_under_amber_rules(engine: Engine, tokens: dict[str, str]) -> None:
    client = _client(create_app(engine, sweep_every=None), tokens["admin"])
    assert client.post("/c/banks", json={"name": "KNOWN"}).status_code == 201
    added = client.post("/c/bank/KNOWN/signal", json={"pdq": PDQ.upper(), "note": "from ABC"})
    assert added.json() == {"id": 1, "signals": {"pdq": PDQ}}
    assert client.post("/c/bank/KNOWN/signal", json={}).status_code == 400
    assert client.post("/c/bank/KNOWN/signal", json={"tmk": "x"}).status_code == 400
    assert client.post("/c/bank/KNOWN/signal", json={"pdq": "banana"}).status_code == 400
    content = client.get("/c/bank/KNOWN/content/1", params={"include_signals": "true"}).json()
    assert content == {
        "id": 1,
        "disable_until_ts": 1,
        "collab_metadata": {},
        "original_media_uri": None,
        "bank": {"matching_enabled_ratio": 1.0, "name": "KNOWN"},
        "note": "from ABC",
        "signals": {"pdq": PDQ},
    }
    query = {"signal_type": "pdq", "signal": NEAR}
    found = client.get("/m/lookup", params=query).json()
    assert found == {"KNOWN": [{"bank_content_id": 1, "distance": "8"}]}
    raw = client.get("/m/raw_lookup", params={**query, "include_distance": "True"}).json()
    assert raw == {"matches": [{"bank_content_id": 1, "distance": "8"}]}
    assert client.get("/m/lookup", params={**query, "banks": "OTHER"}).json() == {}
    # an entry disabled for now does not match; 1 enables it again
    later = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    changed = client.put("/c/bank/KNOWN/content/1", json={"disable_until_ts": later})
    assert changed.json()["disable_until_ts"] == later
    assert client.get("/m/lookup", params=query).json() == {}
    for refused in (0, -5, 9_999_999_999, "soon"):
        answer = client.put("/c/bank/KNOWN/content/1", json={"disable_until_ts": refused})
        assert answer.status_code == 400, refused
    client.put("/c/bank/KNOWN/content/1", json={"disable_until_ts": 1, "note": ""})
    assert "note" not in client.get("/c/bank/KNOWN/content/1").json()
    # a disabled bank matches nothing; rename keeps its content
    assert client.put("/c/bank/KNOWN", json={"enabled": False}).json() == {
        "matching_enabled_ratio": 0.0,
        "name": "KNOWN",
    }
    assert client.get("/m/lookup", params=query).json() == {}
    renamed = client.put("/c/bank/KNOWN", json={"name": "RENAMED", "enabled_ratio": 1})
    assert renamed.json() == {"matching_enabled_ratio": 1.0, "name": "RENAMED"}
    assert client.get("/m/lookup", params=query).json() == {
        "RENAMED": [{"bank_content_id": 1, "distance": "8"}]
    }
    assert client.get("/m/index/status").json()["pdq"]["size"] == 1
    assert client.delete("/c/bank/RENAMED/content/1").json() == {"deleted": 1}
    assert client.delete("/c/bank/RENAMED/content/1").json() == {"deleted": 0}
    assert client.get("/c/bank/RENAMED/content/1").status_code == 404


def test_files_are_banked_as_amber_banks_them(engine: Engine, tokens: dict[str, str]) -> None:
    client = _client(create_app(engine, sweep_every=None), tokens["admin"])
    client.post("/c/banks", json={"name": "PHOTOS"})
    upload = client.post(
        "/c/bank/PHOTOS/content", files={"photo": ("a.jpg", _jpeg(7), "image/jpeg")}
    )
    assert upload.status_code == 200, upload.text
    assert set(upload.json()["signals"]) == {"pdq"}
    entry = engine.banks.entry("PHOTOS", upload.json()["id"])
    # HMA's answer names HMA's types; amber keeps its own too (keypoints, for crops).
    assert {v.signal_type for v in entry.values} == {"sha256", "md5", "pdq", "orb"}
    cropped = io.BytesIO()
    photo(7, 320, 240).crop((32, 24, 288, 216)).save(cropped, "JPEG", quality=92)
    found = client.post(
        "/m/lookup", files={"photo": ("crop.jpg", cropped.getvalue(), "image/jpeg")}
    )
    assert list(found.json()["pdq"]) == ["PHOTOS"]  # the bank's views of it match a crop
    hashed = client.post("/h/hash", files={"photo": ("b.jpg", _jpeg(7), "image/jpeg")})
    assert hashed.json() == upload.json()["signals"]
    video = client.post("/h/hash", files={"video": ("v.mp4", b"not a video", "video/mp4")})
    assert set(video.json()) == {"video_md5"}
    assert client.post("/h/hash", files={"audio": ("a.mp3", b"x", "audio/mpeg")}).status_code == 400
    unreadable = client.post("/h/hash", files={"photo": ("x.jpg", b"not a photo", "image/jpeg")})
    assert unreadable.status_code == 400
    looked = client.post("/m/lookup", files={"photo": ("c.jpg", _jpeg(7), "image/jpeg")})
    assert looked.json()["pdq"]["PHOTOS"][0]["bank_content_id"] == upload.json()["id"]
    refused = client.get("/h/hash", params={"url": "http://127.0.0.1:9/a.jpg"})
    assert refused.status_code == 400  # a private address, without --allow-private-urls
    metadata = client.post(
        "/c/bank/PHOTOS/content",
        params={"url": "http://127.0.0.1:9/a.jpg"},
        json={"metadata": {"unknown": 1}},
    )
    assert metadata.status_code == 400 and "unexpected keys" in metadata.json()["message"]


def test_exchanges_on_hma_routes(engine: Engine, tokens: dict[str, str]) -> None:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    client = _client(create_app(engine, sweep_every=None), tokens["admin"])
    assert {"sample", "fb_threatexchange"} <= set(client.get("/c/exchanges/apis").json())
    assert client.post("/c/exchanges", json={"bank": "lower", "api": "sample"}).status_code == 400
    assert client.post("/c/exchanges", json={"bank": "S", "api": "nope"}).status_code == 400
    new = {"bank": "SAMPLE", "api": "sample", "api_json": {}}
    assert client.post("/c/exchanges", json=new).json() == {"message": "Created successfully"}
    assert client.post("/c/exchanges", json=new).status_code == 403
    assert client.get("/c/exchanges").json() == ["SAMPLE"]
    assert client.get("/c/exchange/SAMPLE").json() == {
        "name": "SAMPLE",
        "api": "sample",
        "enabled": True,
    }
    assert engine.exchanges.fetch("SAMPLE").succeeded
    status = client.get("/c/exchange/SAMPLE/status").json()
    assert status["last_fetch_succeeded"] is True and status["fetched_items"] > 0
    query = {"signal_type": "pdq", "signal": PdqSignal.get_examples()[0]}
    (found, *_) = client.get("/m/raw_lookup", params=query).json()["matches"]
    content = client.get(f"/c/bank/SAMPLE/content/{found}").json()
    assert content["collab_metadata"] == {"SAMPLE": []}
    assert client.put("/c/exchange/SAMPLE", json={"enabled": False}).json()["enabled"] is False
    assert _client(client.app, tokens["ingest"]).get("/c/exchanges").status_code == 403
    assert client.delete("/c/exchange/SAMPLE").json() == {"message": "Exchange deleted"}
    assert client.delete("/c/exchange/SAMPLE").status_code == 200
    assert client.get("/c/exchange/SAMPLE/status").status_code == 404
    assert client.get("/c/bank/SAMPLE").status_code == 200  # amber keeps the bank


def test_settings_reach_every_worker(
    engine: Engine, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_ = HmaSettings(
        anonymous=True,
        roles=frozenset({HmaRole.matcher}),
        allowed_hosts=frozenset({"cdn.example.com"}),
        max_fetch_bytes=1000,
    )
    assert HmaSettings.from_json(json.loads(json.dumps(settings_.to_json()))) == settings_
    assert HmaSettings.from_json({}) == HmaSettings()
    carried = {
        "db": engine.db.url.render_as_string(hide_password=False),
        "vault": str(engine.vault_path),
        "signing_key": None,
        "policy": None,
        "media_root": None,
        "max_body": 1 << 20,
        "hma": settings_.to_json(),
    }
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(carried))
    worker = app_from_env()
    try:
        assert worker.state.hma == settings_
    finally:
        worker.state.engine.close()


# -- the face's own description, fuzzed ----------------------------------------------------

CHECKS = [
    checks.status_code_conformance,
    checks.not_a_server_error,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_every_hma_error_is_documented_with_hma_body() -> None:
    spec = openapi_spec()
    error = {"$ref": "#/components/schemas/HmaError"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            if operation.get("security"):
                assert {"400", "401", "403", "404", "503"} <= set(operation["responses"]), where
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path != "/status":
                    assert answer["content"] == {"application/json": {"schema": error}}, where


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("hma-fuzz")
    with open_engine(db=root / "a.db", vault=root / "vault") as engine:
        # URLs only to a host that never answers here: nothing leaves the machine
        app = create_app(
            engine,
            sweep_every=None,
            max_body=1_000_000,
            hma=HmaSettings(allowed_hosts=frozenset({"hma.invalid"})),
        )
        _, token = engine.tokens.create("fuzz", parse_scopes("admin"))
        with TestClient(app, headers={"authorization": f"Bearer {token}"}) as client:
            assert client.post("/c/banks", json={"name": "KNOWN"}).status_code == 201
            assert client.post("/c/bank/KNOWN/signal", json={"pdq": PDQ}).status_code == 200
            yield app, token


@pytest.fixture(scope="module")
def hma_schema(fuzzed: tuple[FastAPI, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi/openapi.json", fuzzed[0])


schema = schemathesis.pytest.from_fixture("hma_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_hma_answers_as_its_description_says(case: Case, fuzzed: tuple[FastAPI, str]) -> None:
    case.call_and_validate(headers={"authorization": f"Bearer {fuzzed[1]}"}, checks=CHECKS)
