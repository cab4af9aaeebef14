"""The evidence vault: preservation, tamper detection, holds, retention, bags."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amber.engine import Engine, ScanResult, open_engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.evidence.bag import export_bag, verify_bag
from amber.evidence.vault import Vault
from amber.evidence.verify import verify_vault
from amber.posts import read_input
from amber.synthetic import photo


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def put(vault: Vault, tmp_path: Path, post_id: str, content: bytes = b"\xff\xd8 photo") -> None:
    media = tmp_path / f"{post_id}.jpg"
    media.write_bytes(content)
    vault.preserve(
        post_id=post_id,
        post=json.dumps({"id": post_id}),
        media=[(0, media.name, media, hashlib.sha256(content).hexdigest())],
        decision={"post_id": post_id, "verdict": "remove", "reasons": []},
        source="posts.jsonl line 1",
        policy="default@abc",
    )


@pytest.fixture
def scanned(
    engine: Engine, write_posts: Callable[..., Path], photo_file: Callable[..., Path]
) -> tuple[Engine, Path]:
    """An engine whose scan removed one post (a banked photo) and allowed another."""
    known = photo_file(5, "known.jpg")
    engine.banks.create("known", label="execution-photo")
    engine.banks.add_files("known", [known])
    posts = write_posts(
        [
            {"id": "bad", "text": "look", "media": [{"path": str(known)}]},
            {"id": "fine", "media": [{"path": str(photo_file(6))}]},
        ]
    )
    results = [r for r in engine.scan(read_input(posts)) if isinstance(r, ScanResult)]
    assert [r.outcome.verdict.value for r in results] == ["remove", "allow"]
    return engine, known


def test_a_removed_post_is_preserved_exactly(scanned: tuple[Engine, Path]) -> None:
    engine, known = scanned
    vault = engine.open_vault()
    items = vault.items()
    assert set(items) == {"bad"}  # allow verdicts are not kept
    item = items["bad"]
    [media] = item.objects["media"]
    assert vault.read(media["sha256"]) == known.read_bytes()
    path = vault.object_path(media["sha256"])
    assert path.stat().st_mode & 0o777 == 0o444
    post = json.loads(vault.read(item.objects["post"]))
    assert post["id"] == "bad" and post["text"] == "look"
    decision = json.loads(vault.read(item.objects["decision"]))
    assert decision["verdict"] == "remove" and decision["reasons"][0]["bank"] == "known"
    collection = json.loads(vault.read(item.objects["collection"]))
    assert collection["collector"].startswith("amber/") and "line 1" in collection["source"]
    assert collection["policy"].startswith("default@")
    assert item.retain_until - item.preserved_at == timedelta(days=183)
    assert verify_vault(engine.vault_path).ok
    engine.close()


def test_scanning_again_adds_no_second_copy(scanned: tuple[Engine, Path], tmp_path: Path) -> None:
    engine, known = scanned
    before = len(engine.open_vault().log)
    posts = tmp_path / "again.jsonl"
    posts.write_text(
        json.dumps({"id": "bad", "text": "look", "media": [{"path": str(known)}]}) + "\n"
    )
    list(engine.scan(read_input(posts)))
    assert len(engine.open_vault().log) == before
    engine.close()


def test_allow_only_scans_create_no_vault(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        list(engine.scan(read_input(write_posts([{"id": "x", "text": "hello"}]))))
    assert not (tmp_path / "vault").exists()


def _vault_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "lock")


@pytest.mark.slow
def test_every_changed_or_removed_byte_is_detected(tmp_path: Path) -> None:
    """Flip one byte, or delete one, anywhere in any file of the vault: verify fails."""
    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1")
    put(vault, tmp_path, "p2", b"\x89PNG other")
    vault.hold("p1", reason="case 7", actor="tester")
    original = tmp_path / "original"
    shutil.copytree(tmp_path / "v", original)
    assert verify_vault(tmp_path / "v").ok
    checked = 0
    for file in _vault_files(original):
        data = file.read_bytes()
        # Every byte of small files; a spread of positions in larger ones.
        positions = range(len(data)) if len(data) <= 300 else range(0, len(data), 7)
        for position in positions:
            for mutated in (
                data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :],
                data[:position] + data[position + 1 :],
            ):
                target = tmp_path / "v" / file.relative_to(original)
                mode = target.stat().st_mode
                target.chmod(0o600)
                target.write_bytes(mutated)
                report = verify_vault(tmp_path / "v")
                assert not report.ok, f"{file.relative_to(original)} byte {position}"
                target.write_bytes(data)
                target.chmod(mode)
                checked += 1
    assert checked > 2000
    assert verify_vault(tmp_path / "v").ok


def test_removed_or_reordered_records_and_missing_objects_are_named(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "v")
    for n in range(3):
        put(vault, tmp_path, f"p{n}", f"photo {n}".encode())
    records = tmp_path / "v" / "log" / "records.jsonl"
    lines = records.read_bytes().split(b"\n")[:-1]
    records.write_bytes(b"\n".join([lines[0], lines[2], lines[1], lines[3]]) + b"\n")
    assert any("reordered" in p for p in verify_vault(tmp_path / "v").problems)
    records.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    assert any("records were removed" in p for p in verify_vault(tmp_path / "v").problems)
    records.write_bytes(b"\n".join(lines) + b"\n")
    item = vault.items()["p1"]
    vault.object_path(item.objects["media"][0]["sha256"]).unlink()
    [problem] = verify_vault(tmp_path / "v").problems
    assert "'p1' is missing" in problem


def test_holds_and_retention(tmp_path: Path) -> None:
    clock = Clock()
    vault = Vault.open(tmp_path / "v", clock=clock, retention=timedelta(days=10))
    put(vault, tmp_path, "kept", b"shared bytes")
    put(vault, tmp_path, "gone", b"shared bytes")  # the same media in two posts
    put(vault, tmp_path, "alone", b"only here")
    vault.hold("kept", reason="order 2026/17", actor="legal")
    with pytest.raises(ConflictError, match="already under hold"):
        vault.hold("kept", reason="again", actor="legal")
    with pytest.raises(UserError, match="needs a reason"):
        vault.hold("gone", reason=" ", actor="legal")
    with pytest.raises(NotFoundError):
        vault.hold("nope", reason="x", actor="legal")
    clock.now += timedelta(days=5)
    assert vault.expire() == []
    clock.now += timedelta(days=6)
    assert sorted(vault.expire()) == ["alone", "gone"]
    items = vault.items()
    assert items["gone"].deleted and items["alone"].deleted and not items["kept"].deleted
    shared = items["kept"].objects["media"][0]["sha256"]
    assert vault.read(shared) == b"shared bytes"  # still named by the held item
    only = items["alone"].objects["media"][0]["sha256"]
    assert not vault.object_path(only).exists()
    events = [e.record["event"] for e in vault.log if e.record.get("post_id") == "alone"]
    assert events == ["preserved", "retention_expired", "deleted"]
    assert verify_vault(tmp_path / "v").ok
    vault.release("kept", reason="case closed", actor="legal")
    assert vault.expire() == ["kept"]
    assert not vault.object_path(shared).exists()
    assert verify_vault(tmp_path / "v").ok


def test_bag_export_verifies_offline_and_detects_tampering(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1", photo_bytes := _jpeg())
    put(vault, tmp_path, "p2")
    bag = export_bag(
        vault, "p1", tmp_path / "bag", contact="ti@example.org", organization="Example Platform"
    )
    with pytest.raises(UserError, match="already exists"):
        export_bag(vault, "p1", tmp_path / "bag")
    assert [e.record["event"] for e in vault.log if e.record.get("post_id") == "p1"] == [
        "preserved",
        "exported",
    ]
    elsewhere = tmp_path / "other-machine" / "bag"
    shutil.copytree(bag, elsewhere)
    shutil.rmtree(tmp_path / "v")  # the bag alone must do
    report = verify_bag(elsewhere)
    assert report.ok, report.problems
    assert report.post_id == "p1" and report.records == 2
    [media] = (elsewhere / "data" / "media").iterdir()
    assert media.read_bytes() == photo_bytes and media.suffix == ".jpg"
    info = (elsewhere / "bag-info.txt").read_text()
    assert "Contact-Email: ti@example.org" in info and "External-Identifier: p1" in info
    assert (elsewhere / "manifest-sha512.txt").exists()
    assert (elsewhere / "tagmanifest-sha256.txt").exists()

    media.write_bytes(photo_bytes[:-1] + b"\x00")
    assert not verify_bag(elsewhere).ok  # fixity
    media.write_bytes(photo_bytes)
    note = elsewhere / "data" / "checkpoint.txt"
    text = note.read_text()
    note.write_text(text.replace("\n", "\n ", 1))
    _rehash(elsewhere)
    assert any("checkpoint" in p for p in verify_bag(elsewhere).problems)
    note.write_text(text)
    custody = elsewhere / "data" / "custody.jsonl"
    custody.write_bytes(custody.read_bytes().replace(b'"remove"', b'"review"'))
    _rehash(elsewhere)  # a forger who recomputes the manifests is still caught
    assert any("custody.jsonl line 1" in p for p in verify_bag(elsewhere).problems)


def _rehash(bag: Path) -> None:
    import bagit

    b = bagit.Bag(str(bag))
    b.save(manifests=True)


def _jpeg() -> bytes:
    import io

    buffer = io.BytesIO()
    photo(3, 64, 48).save(buffer, "JPEG")
    return buffer.getvalue()


def test_not_a_vault(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "x.txt").write_text("mine")
    with pytest.raises(UserError, match="not an amber vault"):
        Vault.open(tmp_path / "stuff")
    assert (tmp_path / "stuff" / "x.txt").read_text() == "mine"


def test_amber_never_signs_a_checkpoint_inconsistent_with_an_earlier_one(
    tmp_path: Path,
) -> None:
    from amber.evidence.log import LogError

    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1")
    records = tmp_path / "v" / "log" / "records.jsonl"
    signed = sorted((tmp_path / "v" / "log" / "checkpoints").iterdir())
    # Rewrite history: a different but well-formed record in place of the signed one.
    lines = records.read_bytes().split(b"\n")[:-1]
    lines[1] = lines[1].replace(b'"remove"', b'"review"')
    records.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(LogError, match="refusing to sign an inconsistent checkpoint"):
        put(Vault.open(tmp_path / "v"), tmp_path, "p2")
    assert sorted((tmp_path / "v" / "log" / "checkpoints").iterdir()) == signed


def test_a_viewed_event_is_logged(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1")
    entry = vault.record("p1", "viewed", actor="reviewer-7", media=0)
    assert entry.record["event"] == "viewed" and entry.record["actor"] == "reviewer-7"
    assert verify_vault(tmp_path / "v").ok


def test_recovery_repairs_only_what_a_crash_leaves(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1")
    records = tmp_path / "v" / "log" / "records.jsonl"
    data = records.read_bytes()
    # A signed record that lost only its newline is kept, not dropped.
    records.write_bytes(data[:-1])
    assert "restored the newline" in " ".join(Vault.open(tmp_path / "v").recovered)
    assert records.read_bytes() == data and verify_vault(tmp_path / "v").ok
    # A well-formed record amber never announced is not signed by recovery.
    fake = b'{"actor":"x","event":"deleted","objects":[],"post_id":"p1","time":"2026-01-01"}\n'
    records.write_bytes(data + fake)
    reopened = Vault.open(tmp_path / "v")
    assert any("did not announce" in step for step in reopened.recovered)
    report = verify_vault(tmp_path / "v")
    assert not report.ok and any("after the last signed checkpoint" in p for p in report.problems)


def test_a_lost_key_is_not_silently_replaced(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path / "v")
    put(vault, tmp_path, "p1")
    key = tmp_path / "v" / "keys" / "checkpoint.key"
    key.chmod(0o644)
    assert any("must be 0600" in p for p in verify_vault(tmp_path / "v").problems)
    key.unlink()
    with pytest.raises(UserError, match="restore it from your backup"):
        Vault.open(tmp_path / "v")
    assert not key.exists()
