"""Pending evidence per client and version: a preservation is staged under the key of the
vault item it becomes (client, post id, version), so two clients' "p1", or two versions
of one post, never share a staged manifest; retries, the sweep and
``Engine.missing_evidence`` work on that key. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, EvidencePendingError, open_engine
from amber.evidence.vault import Vault
from amber.identity import item_key
from amber.posts import parse_post
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import run_cli


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, 320, 240).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Banked:
    engine: Engine
    vault: Path
    clients: dict[str, TestClient]


@pytest.fixture
def banked(database: str, tmp_path: Path) -> Iterator[Banked]:
    """An engine whose bank ``known`` holds photos 5 and 6 (action remove), and its API
    for the ingest tokens ``alpha`` and ``beta``."""
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        for seed in (5, 6):
            (tmp_path / f"known{seed}.jpg").write_bytes(_jpeg(seed))
            engine.banks.add_files("known", [tmp_path / f"known{seed}.jpg"])
        app = create_app(engine)
        clients = {}
        for name in ("alpha", "beta"):
            token = engine.tokens.create(name, parse_scopes("ingest"))[1]
            clients[name] = TestClient(
                app, headers={"authorization": f"Bearer {token}"}, raise_server_exceptions=False
            )
        with clients["alpha"], clients["beta"]:
            yield Banked(engine, tmp_path / "vault", clients)


def _break_objects(vault: Path) -> Path:
    """Make every new object of the vault fail (a file where its folder was)."""
    aside = vault.with_name("objects-aside")
    (vault / "objects").rename(aside)
    (vault / "objects").write_bytes(b"")
    return aside


def _mend_objects(vault: Path, aside: Path) -> None:
    (vault / "objects").unlink()
    aside.rename(vault / "objects")


def _upload(client: TestClient, post_id: str, data: bytes) -> object:
    return client.post(
        "/v1/posts/upload",
        data={"post": json.dumps({"id": post_id})},
        files=[("media", ("a.jpg", data, "image/jpeg"))],
    )


def _media_of(vault: Vault, key: str) -> str:
    [media] = vault.item(key).objects["media"]
    return str(media["sha256"])


def test_two_clients_pending_p1_are_staged_apart_and_each_finished(banked: Banked) -> None:
    engine, alpha, beta = banked.engine, banked.clients["alpha"], banked.clients["beta"]
    engine.open_vault()
    aside = _break_objects(banked.vault)
    for client, seed in ((alpha, 5), (beta, 6)):
        answer = _upload(client, "p1", _jpeg(seed))
        assert answer.status_code == 503, answer.text  # type: ignore[attr-defined]
    # Both are pending, each under its own key: beta's "p1" did not replace alpha's.
    assert len(list((banked.vault / "staging").glob("*.json"))) == 2
    for client in (alpha, beta):
        shown = client.get("/v1/decisions/p1").json()
        assert (shown["verdict"], shown["evidence"]) == ("remove", "pending"), shown
    pending = {(m.client, m.post_id, m.version, m.state) for m in engine.missing_evidence()}
    assert pending == {("alpha", "p1", 1, "pending"), ("beta", "p1", 1, "pending")}
    _mend_objects(banked.vault, aside)

    retry = _upload(alpha, "p1", _jpeg(5))  # alpha's retry finishes alpha's only
    assert retry.status_code == 200, retry.text  # type: ignore[attr-defined]
    assert retry.json()["evidence"] == "preserved"  # type: ignore[attr-defined]
    assert beta.get("/v1/decisions/p1").json()["evidence"] == "pending"
    report = engine.sweep_evidence()  # and the sweep beta's
    assert report.preserved == [item_key("p1", "beta", 1)] and not report.failed

    vault = engine.open_vault()
    assert _media_of(vault, item_key("p1", "alpha", 1)) == _sha256(_jpeg(5))
    assert _media_of(vault, item_key("p1", "beta", 1)) == _sha256(_jpeg(6))
    assert engine.missing_evidence() == []
    assert not list((banked.vault / "staging").glob("*.json"))


def test_an_edit_whose_evidence_fails_is_pending_as_its_own_version(
    engine: Engine, tmp_path: Path
) -> None:
    engine.banks.create("known", action="remove")
    for seed in (5, 6):
        (tmp_path / f"known{seed}.jpg").write_bytes(_jpeg(seed))
        engine.banks.add_files("known", [tmp_path / f"known{seed}.jpg"])
    (tmp_path / "five.jpg").write_bytes(_jpeg(5))
    (tmp_path / "six.jpg").write_bytes(_jpeg(6))
    first = parse_post({"id": "p1", "media": [{"path": "five.jpg"}]}, base=tmp_path, source="t")
    edit = parse_post({"id": "p1", "media": [{"path": "six.jpg"}]}, base=tmp_path, source="t")
    assert engine.submit(first, client="c").decision.evidence == "preserved"
    aside = _break_objects(tmp_path / "vault")
    with pytest.raises(EvidencePendingError, match="pending"):
        engine.submit(edit, client="c")
    stored = engine.with_evidence(engine.decisions.get("p1", client="c"))
    assert (stored.version, stored.evidence) == (2, "pending")
    [missing] = engine.missing_evidence()
    assert (missing.key, missing.state) == (item_key("p1", "c", 2), "pending")
    _mend_objects(tmp_path / "vault", aside)

    retry = engine.submit(edit, client="c")
    assert not retry.new and retry.decision.version == 2
    assert retry.decision.evidence == "preserved"
    vault = engine.open_vault()
    assert _media_of(vault, item_key("p1", "c", 1)) == _sha256(_jpeg(5))  # v1 untouched
    assert _media_of(vault, item_key("p1", "c", 2)) == _sha256(_jpeg(6))
    assert engine.missing_evidence() == []


def test_an_earlier_version_without_evidence_is_reported(
    engine: Engine, database: str, tmp_path: Path, write_posts: object
) -> None:
    engine.banks.create("known", action="remove")
    (tmp_path / "known.jpg").write_bytes(_jpeg(5))
    engine.banks.add_files("known", [tmp_path / "known.jpg"])
    (tmp_path / "five.jpg").write_bytes(_jpeg(5))
    # Version 1 decided with another vault (a mistyped --vault): this vault never got it.
    posts = write_posts([{"id": "p1", "media": [{"path": "five.jpg"}]}])  # type: ignore[operator]
    other = tmp_path / "other-vault"
    scanned = run_cli("scan", posts, "--format", "jsonl", "--db", database, "--vault", str(other))
    assert '"remove"' in scanned.stdout, scanned.stderr
    edit = {"id": "p1", "text": "edited", "media": [{"path": "five.jpg"}]}
    done = engine.submit(parse_post(edit, base=tmp_path, source="t"))
    assert (done.decision.version, done.decision.evidence) == (2, "preserved")
    [missing] = engine.missing_evidence()  # the earlier version needs its evidence too
    assert (missing.post_id, missing.version, missing.state) == ("p1", 1, "missing")
    verified = run_cli("evidence", "verify", "--db", database, "--vault", str(tmp_path / "vault"))
    assert verified.returncode == 1 and "no evidence" in verified.stderr


def test_a_staged_preservation_moves_to_the_version_stored(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "vault")
    data = _jpeg(5)
    staged = vault.stage(
        post_id="p1",
        post='{"id": "p1"}',
        decision={"post_id": "p1", "verdict": "remove", "client": "c", "version": 1},
        media=[(0, "a.jpg", data, _sha256(data))],
        source="request",
        policy="builtin",
        client="c",
        version=1,
    )
    assert staged.key == item_key("p1", "c", 1)
    assert vault.staging.get("p1") is None  # another client's (local) p1 is not it
    moved = vault.restage(staged.key, version=2)
    assert moved == item_key("p1", "c", 2) and vault.staging.get(staged.key) is None
    item = vault.finish(moved)
    assert item is not None and (item.client, item.version) == ("c", 2)
    assert json.loads(vault.read(item.objects["decision"]))["version"] == 2
    assert vault.pending() == []


def test_two_versions_in_one_scan_each_keep_their_evidence(engine: Engine, tmp_path: Path) -> None:
    engine.banks.create("known", action="remove")
    for seed in (5, 6):
        (tmp_path / f"known{seed}.jpg").write_bytes(_jpeg(seed))
        engine.banks.add_files("known", [tmp_path / f"known{seed}.jpg"])
    posts = [
        parse_post({"id": "p1", "media": [{"path": f"known{seed}.jpg"}]}, base=tmp_path, source="t")
        for seed in (5, 6)
    ]
    results = list(engine.scan(posts, workers=1))
    assert [r.outcome.verdict.value for r in results] == ["remove", "remove"]  # type: ignore[union-attr]
    assert [d.version for d in engine.decisions.versions("p1")] == [1, 2]
    vault = engine.open_vault()
    assert _media_of(vault, item_key("p1", version=1)) == _sha256(_jpeg(5))
    assert _media_of(vault, item_key("p1", version=2)) == _sha256(_jpeg(6))
    assert engine.missing_evidence() == []
