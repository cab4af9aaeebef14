"""The database failing under a running service: a SQLite file removed or replaced, a
PostgreSQL server that stops answering within a statement. Each gives a clear 503 (exit 3
on the command line), never a silent 200 on the wrong data or a request hung for ever,
and service resumes once the database is back."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.store.db import database_url, no_deadline
from amber.tokens import parse_scopes
from conftest import postgresql_only, run_cli, sqlite_only
from relay import relay_to


def _client(engine: Engine) -> TestClient:
    _, token = engine.tokens.create("ops", parse_scopes("admin"))
    return TestClient(create_app(engine), headers={"authorization": f"Bearer {token}"})


@sqlite_only
def test_a_database_file_removed_under_a_running_service_gives_503_and_no_empty_restart(
    tmp_path: Path, database: str
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        client = _client(engine)
        assert [b["name"] for b in client.get("/v1/banks").json()] == ["known"]
        os.unlink(database)  # an operator's slip, a clean-up script, a full redeploy
        down = client.get("/v1/banks")
        assert down.status_code == 503, down.text
        error = down.json()["error"]
        assert error["type"] == "DatabaseGoneError"
        assert f"database file {database!r} was removed" in error["message"]
        assert client.post("/v1/posts", json={"id": "p1", "text": "hi"}).status_code == 503
        assert not Path(database).exists()  # nothing new and empty was made in its place
    # Started again on the same path, amber says the database is gone, not "no banks".
    again = run_cli("bank", "list", "--db", database)
    assert again.returncode == 2, again.stdout
    assert f"database {database!r} does not exist" in again.stderr
    assert "removed or moved" in again.stderr  # its index beside it shows one was there
    assert "Traceback" not in again.stderr and not Path(database).exists()


@sqlite_only
def test_a_database_file_replaced_under_a_running_service_gives_503(
    tmp_path: Path, database: str
) -> None:
    other = tmp_path / "other.db"
    with open_engine(db=other, vault=tmp_path / "vault-2") as engine:
        engine.banks.create("someone-else", action="review")
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        client = _client(engine)
        assert client.get("/v1/banks").json() == []
        shutil.copy(other, tmp_path / "swap.db")
        os.replace(tmp_path / "swap.db", database)
        down = client.get("/v1/banks")
        assert down.status_code == 503, down.text
        assert f"database file {database!r} was replaced" in down.json()["error"]["message"]


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AMBER_DB_TIMEOUT", "1")
    yield


@postgresql_only
def test_a_postgresql_statement_that_cannot_finish_gives_503_and_service_resumes(
    tmp_path: Path, database: str, short_timeout: None
) -> None:
    """A session holds a lock every bank read needs, as a stuck migration or a hung admin
    session would: the request ends with 503 at amber's statement limit, not when the
    other session lets go (it gives up after a minute, for the code before the limit)."""
    holder = sa.create_engine(database_url(database))
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        client = _client(engine)
        assert client.get("/v1/banks").status_code == 200
        locked, release = threading.Event(), threading.Event()

        def hold() -> None:
            with holder.begin() as conn:
                conn.exec_driver_sql("LOCK TABLE banks IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(60)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert locked.wait(30)
            down = client.get("/v1/banks")
        finally:
            release.set()
            thread.join()
        assert down.status_code == 503, down.text
        error = down.json()["error"]
        assert error["type"] == "ExternalError"
        assert "statement timeout" in error["message"]
        assert client.get("/v1/banks").status_code == 200  # the same engine, no restart
    holder.dispose()


@postgresql_only
def test_postgresql_connections_carry_the_statement_limit_and_keepalives(
    tmp_path: Path, database: str, short_timeout: None
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine, engine.db.connect() as c:
        assert c.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
        assert (
            c.exec_driver_sql("SHOW search_path").scalar()
            == sa.make_url(database).query["options"].split("=", 1)[1]
        )  # the URL's own options are kept
        raw = c.connection.dbapi_connection
        assert raw is not None
        params = raw.info.get_parameters()  # type: ignore[attr-defined]
        assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "1000"
    assert engine.db.pool.timeout() == 1  # type: ignore[attr-defined]


def _in_thread(work: object, seconds: float = 30) -> BaseException | None:
    """What ``work()`` raised (``None``: it returned); fails the test if it is still
    waiting after ``seconds`` (a hang), instead of hanging the suite."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting for the database after {seconds} s"
    return outcome[0]


@postgresql_only
def test_a_statement_a_frozen_relay_never_answers_fails_at_amber_s_deadline(
    tmp_path: Path, database: str, short_timeout: None
) -> None:
    """Mid-transaction (no pool ping to notice first), the relay stops forwarding: the
    server never sees the statement, so only amber's own deadline can end the wait."""
    with (
        relay_to(database) as relay,
        open_engine(db=relay.url(database), vault=tmp_path / "vault") as engine,
    ):
        with engine.db.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            relay.freeze()
            try:
                failed = _in_thread(lambda: conn.exec_driver_sql("SELECT 1"))
            finally:
                relay.thaw()  # a hung statement finishes: the test can end
            assert isinstance(failed, sa.exc.OperationalError), failed
            assert "no answer within 2 s (AMBER_DB_TIMEOUT" in str(failed)
            assert conn.invalidated  # the pool drops the broken connection
        with engine.db.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1


@postgresql_only
def test_no_deadline_lets_a_long_statement_finish(
    tmp_path: Path, database: str, short_timeout: None
) -> None:
    """Migrations wait as long as they need: past amber's 2 s deadline here."""
    with (
        open_engine(db=database, vault=tmp_path / "vault") as engine,
        engine.db.connect() as conn,
        no_deadline(conn),
    ):
        conn.exec_driver_sql("SET statement_timeout = 0")
        assert _in_thread(lambda: conn.exec_driver_sql("SELECT pg_sleep(2.5)")) is None


@postgresql_only
def test_a_pooled_connection_reset_under_its_ping_is_replaced_never_an_error_of_amber_s(
    tmp_path: Path, database: str
) -> None:
    """The relay resets every connection while one waits in the pool; the next checkout's
    ping fails. Sometimes psycopg has not yet called the connection broken, and SQLAlchemy
    then raised ``ProgrammingError`` (a 500 in the service, 9 checkouts in 200 here). Every
    checkout must fail as the database's ``OperationalError`` (503)."""
    kinds: set[str] = set()
    with (
        relay_to(database) as relay,
        open_engine(db=relay.url(database), vault=tmp_path / "vault") as engine,
    ):
        for _ in range(300):
            with engine.db.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            relay.cut()
            try:
                with engine.db.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                kinds.add("ok")  # a checkout that raced the cut's refusal
            except sa.exc.SQLAlchemyError as exc:
                kinds.add(type(exc).__name__)
            finally:
                relay.thaw()
        with engine.db.connect() as conn:  # service resumes once the database answers
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    assert kinds <= {"OperationalError", "ok"}, kinds
