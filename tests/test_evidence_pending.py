"""A decision and its evidence are one outcome: when the vault cannot be written after the
decision is stored, the answer says so (503, evidence pending), a retry of the same post
completes the preservation, the sweep finishes what a crash left, and ``evidence verify``
names decisions of review or stronger that have no evidence."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.evidence.verify import verify_vault
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import run_cli


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, 320, 240).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def banked(database: str, tmp_path: Path) -> Iterator[tuple[Engine, TestClient]]:
    """An engine whose bank ``known`` holds photo 5 (action remove), and its API."""
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        (tmp_path / "known.jpg").write_bytes(_jpeg(5))
        engine.banks.add_files("known", [tmp_path / "known.jpg"])
        token = engine.tokens.create("ingest", parse_scopes("ingest,admin"))[1]
        app = create_app(engine)
        headers = {"authorization": f"Bearer {token}"}
        with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
            yield engine, client


def _break_objects(vault: Path) -> Path:
    """Make the vault's object store unwritable (a file where its folder was), as a full
    disk would: every new object fails. Returns where the folder was put aside."""
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
        data={"post": f'{{"id": "{post_id}"}}'},
        files=[("media", ("a.jpg", data, "image/jpeg"))],
    )


def test_a_vault_failure_after_the_decision_is_a_503_and_a_retry_preserves(
    banked: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = banked
    engine.open_vault()
    aside = _break_objects(tmp_path / "vault")
    first = _upload(client, "p1", _jpeg(5))
    assert first.status_code == 503, first.text  # type: ignore[attr-defined]
    error = first.json()["error"]  # type: ignore[attr-defined]
    assert "stored" in error["message"] and "pending" in error["message"]
    shown = client.get("/v1/decisions/p1").json()
    assert shown["verdict"] == "remove" and shown["evidence"] == "pending"
    assert [m.post_id for m in engine.missing_evidence()] == ["p1"]
    _mend_objects(tmp_path / "vault", aside)

    retry = _upload(client, "p1", _jpeg(5))
    assert retry.status_code == 200, retry.text  # type: ignore[attr-defined]
    assert retry.json()["verdict"] == "remove"  # type: ignore[attr-defined]
    assert retry.json()["evidence"] == "preserved"  # type: ignore[attr-defined]
    item = engine.open_vault().item("p1")
    [media] = item.objects["media"]
    assert engine.open_vault().read(media["sha256"]) == _jpeg(5)
    assert engine.missing_evidence() == []
    assert verify_vault(tmp_path / "vault").ok


def test_the_sweep_preserves_what_a_crash_left_pending(
    banked: tuple[Engine, TestClient], tmp_path: Path, database: str
) -> None:
    engine, client = banked
    engine.open_vault()
    aside = _break_objects(tmp_path / "vault")
    assert _upload(client, "p2", _jpeg(5)).status_code == 503  # type: ignore[attr-defined]
    allowed = _upload(client, "p3", _jpeg(6))
    assert allowed.json()["evidence"] == "not_needed"  # type: ignore[attr-defined]
    _mend_objects(tmp_path / "vault", aside)
    # The uploaded file is gone: the sweep works from what was staged in the vault.
    swept = run_cli("evidence", "sweep", "--db", database, "--vault", str(tmp_path / "vault"))
    assert swept.returncode == 0, swept.stderr
    assert "p2" in swept.stderr and "1 preserved" in swept.stderr
    assert engine.open_vault().item("p2").verdict == "remove"
    assert not list((tmp_path / "vault" / "staging").rglob("*.json"))
    verified = run_cli("evidence", "verify", "--db", database, "--vault", str(tmp_path / "vault"))
    assert verified.returncode == 0, verified.stderr


def test_verify_fails_on_a_decision_of_review_or_stronger_without_evidence(
    banked: tuple[Engine, TestClient], tmp_path: Path, database: str, write_posts: object
) -> None:
    engine, _ = banked
    engine.open_vault()
    # Decided with another vault (a restore from an old backup, a mistyped --vault): the
    # database holds a removal whose evidence this vault never got.
    (tmp_path / "p4.jpg").write_bytes(_jpeg(5))
    posts = write_posts([{"id": "p4", "media": [{"path": "p4.jpg"}]}])  # type: ignore[operator]
    other = tmp_path / "other-vault"
    scanned = run_cli("scan", posts, "--format", "jsonl", "--db", database, "--vault", str(other))
    assert '"remove"' in scanned.stdout, scanned.stderr
    verified = run_cli("evidence", "verify", "--db", database, "--vault", str(tmp_path / "vault"))
    assert verified.returncode == 1
    assert "p4" in verified.stderr and "no evidence" in verified.stderr
    [missing] = engine.missing_evidence()
    assert (missing.post_id, missing.verdict, missing.state) == ("p4", "remove", "missing")
