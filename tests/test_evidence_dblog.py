"""The custody log in the database: a decision and its ``preserved`` record in one
transaction, a gapless sequence under concurrent writers, one signer at a time, offline
verification of the exported log, and the migration of a file vault."""

from __future__ import annotations

import io
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from amber.engine import Engine, open_engine
from amber.evidence.dblog import DatabaseLog, LogSigner, lock_key
from amber.evidence.log import LogError
from amber.evidence.migrate import export_vault, migrate_vault
from amber.evidence.vault import Vault, read_store
from amber.evidence.verify import verify_vault
from amber.posts import parse_post
from amber.store.db import connect
from amber.synthetic import photo
from conftest import postgresql_only, run_cli


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, 240, 180).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def dbengine(database: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose new vault keeps its log in the database, with a bank holding photo
    5 (action remove)."""
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.vault_log = "database"
        engine.banks.create("known", action="remove")
        (tmp_path / "known.jpg").write_bytes(_jpeg(5))
        engine.banks.add_files("known", [tmp_path / "known.jpg"])
        yield engine


def _decide(engine: Engine, folder: Path, post_id: str, seed: int) -> str:
    (folder / f"{post_id}.jpg").write_bytes(_jpeg(seed))
    post = parse_post(
        {"id": post_id, "media": [{"path": f"{post_id}.jpg"}]}, base=folder, source="t"
    )
    return engine.decide_post(post).outcome.verdict.value


def test_a_decision_is_stored_with_its_record_and_verifies_offline(
    dbengine: Engine, tmp_path: Path
) -> None:
    assert _decide(dbengine, tmp_path, "p1", 5) == "remove"
    assert _decide(dbengine, tmp_path, "p2", 77) == "allow"
    vault = dbengine.open_vault()
    assert vault.database and read_store(vault.path) == {"log": "database"}
    assert not (vault.path / "log" / "records.jsonl").exists()
    vault.log.refresh()
    assert [e.record["event"] for e in vault.log] == ["vault_created", "preserved"]
    assert dbengine.with_evidence(dbengine.decisions.get("p1")).evidence == "preserved"
    assert _decide(dbengine, tmp_path, "p1", 5) == "remove"  # the same again: nothing new
    assert len(vault.log) == 2
    assert dbengine.sign_evidence() == 2
    report = verify_vault(vault.path, db=dbengine.db)
    assert report.ok, report.problems
    assert (report.records, report.items) == (2, 1)

    copy = tmp_path / "copy"
    assert export_vault(vault, copy) == 2
    offline = verify_vault(copy)  # the files alone, no database
    assert offline.ok, offline.problems
    assert offline.records == 2 and offline.objects == report.objects
    records = copy / "log" / "records.jsonl"
    records.write_bytes(records.read_bytes().replace(b'"verdict":"remove"', b'"verdict":"allow"'))
    tampered = verify_vault(copy)
    assert any("do not hash to the signed root" in p for p in tampered.problems)


def test_a_rolled_back_decision_leaves_no_record_and_no_gap(dbengine: Engine) -> None:
    vault = dbengine.open_vault()
    log = vault.log
    assert isinstance(log, DatabaseLog)

    def failing(conn: sa.Connection, written: dict[str, int]) -> None:
        log.append_in(conn, [{"event": "test", "n": 1}])
        raise RuntimeError("the decision's transaction fails after the record")

    with pytest.raises(RuntimeError), dbengine.db.begin() as conn:
        failing(conn, {})
    log.refresh()
    assert len(log) == 1
    entry = log.append({"event": "test", "n": 2})
    assert entry is not None and entry.index == 1  # no gap where the rolled-back one was
    with dbengine.db.connect() as conn:
        seqs = conn.execute(sa.text("SELECT seq FROM custody_records ORDER BY seq")).scalars()
        assert list(seqs) == [0, 1]


def _append_many(url: str, origin: str, vkey: str, writer: int, count: int) -> None:
    log = DatabaseLog(connect(url), origin=origin, verifier_key=vkey)
    for n in range(count):
        log.append({"event": "test", "writer": writer, "n": n})


@postgresql_only
def test_concurrent_writer_processes_get_a_gapless_sequence(database: str, tmp_path: Path) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.vault_log = "database"
        vault = engine.open_vault()
        args = (vault.origin, vault.signer.verifier_key())
        context = multiprocessing.get_context("spawn")
        writers = [
            context.Process(target=_append_many, args=(database, *args, w, 15)) for w in range(4)
        ]
        for process in writers:
            process.start()
        for process in writers:
            process.join(60)
            assert process.exitcode == 0
        vault.log.refresh()
        records = [e.record for e in vault.log][1:]
        assert len(vault.log) == 61
        assert sorted((r["writer"], r["n"]) for r in records) == [
            (w, n) for w in range(4) for n in range(15)
        ]
        for w in range(4):  # each writer's records in its order
            assert [r["n"] for r in records if r["writer"] == w] == list(range(15))
        assert vault.sign() is not None
        assert verify_vault(vault.path, db=engine.db).ok


@postgresql_only
def test_one_signer_holds_the_lock_at_a_time(dbengine: Engine) -> None:
    vault = dbengine.open_vault()
    log = vault.log
    assert isinstance(log, DatabaseLog)
    log.append({"event": "test"})
    with dbengine.db.connect() as other:  # another process's elected signer
        assert other.execute(sa.select(sa.func.pg_try_advisory_lock(lock_key(vault.origin))))
        other.commit()
        assert vault.sign() is None  # it loses the election: signs nothing
        assert log.signed_size() == 1
        other.execute(sa.select(sa.func.pg_advisory_unlock(lock_key(vault.origin))))
        other.commit()
    stop = threading.Event()
    errors: list[Exception] = []
    signers = [LogSigner(log, vault.signer, every=0.05) for _ in range(2)]
    threads = [threading.Thread(target=s.run, args=(stop, errors.append)) for s in signers]
    for thread in threads:
        thread.start()
    try:
        for _ in range(100):
            if log.signed_size() == 2:
                break
            stop.wait(0.05)
        assert sorted(s.leading for s in signers) == [False, True]  # one elected
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert log.signed_size() == 2 and not errors


def test_a_file_vault_migrates_with_every_record_and_its_root(
    database: str, tmp_path: Path
) -> None:
    path = tmp_path / "vault"
    file_vault = Vault.open(path)
    for n in range(3):
        (tmp_path / f"m{n}.jpg").write_bytes(_jpeg(n))
        file_vault.preserve(
            post_id=f"p{n}",
            post=f'{{"id":"p{n}"}}',
            decision={"verdict": "remove"},
            media=[(0, f"m{n}.jpg", tmp_path / f"m{n}.jpg", _sha256(tmp_path / f"m{n}.jpg"))],
            source="test",
            policy="default@0",
        )
    file_vault.hold("p1", reason="order 7", actor="test")
    lines = [e.line for e in file_vault.log]
    latest = file_vault.log.latest_checkpoint()
    assert latest is not None
    db = connect(database)
    done = migrate_vault(path, db)
    assert (done.records, done.imported) == (5, 5)
    assert done.root == latest[1].root.hex()
    again = migrate_vault(path, db)  # rerun (as after a crash): nothing twice
    assert (again.records, again.imported, again.root) == (5, 0, done.root)
    moved = Vault.open(path, db=db)
    assert moved.database and [e.line for e in moved.log] == lines
    assert moved.items()["p1"].hold == "order 7"
    moved.release("p1", reason="done", actor="test")
    moved.sign()
    assert verify_vault(path, db=db).ok
    with pytest.raises(Exception, match="in the database"):
        Vault.open(path)  # without the database


def test_the_cli_signs_exports_and_verifies(database: str, tmp_path: Path) -> None:
    path = tmp_path / "vault"
    vault = Vault.open(path)
    (tmp_path / "m.jpg").write_bytes(_jpeg(3))
    vault.preserve(
        post_id="p",
        post='{"id":"p"}',
        decision={"verdict": "remove"},
        media=[(0, "m.jpg", tmp_path / "m.jpg", _sha256(tmp_path / "m.jpg"))],
        source="test",
        policy="default@0",
    )
    moved = run_cli("evidence", "migrate", "--db", database, "--vault", str(path))
    assert moved.returncode == 0, moved.stderr
    assert "custody log in the database (2 records" in moved.stdout
    db = connect(database)
    Vault.open(path, db=db).log.append({"event": "test"})
    signed = run_cli("evidence", "sign", "--db", database, "--vault", str(path))
    assert signed.returncode == 0 and "3 records" in signed.stdout, signed.stderr
    copy = tmp_path / "copy"
    exported = run_cli(
        "evidence", "export-log", "--db", database, "--vault", str(path), "--out", str(copy)
    )
    assert exported.returncode == 0, exported.stderr
    checked = run_cli("evidence", "verify", "--vault", str(copy))
    assert checked.returncode == 0 and "3 records" in checked.stdout, checked.stderr
    bad = run_cli(
        "evidence", "list", "--vault", str(path), env={"AMBER_DB": str(tmp_path / "none.db")}
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def _sha256(file: Path) -> str:
    import hashlib

    return hashlib.sha256(file.read_bytes()).hexdigest()


def test_a_damaged_database_log_is_refused(dbengine: Engine) -> None:
    vault = dbengine.open_vault()
    with dbengine.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE custody_records SET body = replace(body, 'vault_created', 'vault_createX')"
            )
        )
    with pytest.raises(LogError, match="stored leaf hash"):
        DatabaseLog(dbengine.db, origin=vault.origin, verifier_key=vault.signer.verifier_key())
