"""The schema: Alembic migrations produce exactly the tables the code defines, on SQLite and
PostgreSQL, and opening a database that cannot be amber's fails with a clear error."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from amber.errors import ExternalError, UserError
from amber.store.db import _alembic_config, connect, database_url, display_url
from amber.store.tables import metadata
from conftest import Databases, postgresql_only, run_cli

HEAD = ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_migrations_match_table_definitions(database: str) -> None:
    engine = connect(database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_migrating_twice_is_harmless(database: str) -> None:
    connect(database).dispose()
    engine = connect(database)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
    assert set(sa.inspect(engine).get_table_names()) >= {
        "banks",
        "bank_entries",
        "entry_signals",
        "decisions",
        "post_media",
        "media_signals",
        "api_tokens",
        "review_locks",
        "review_outcomes",
    }
    engine.dispose()


OPEN_AT = """
import sys, time
from amber.store.db import connect
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
connect(sys.argv[1]).dispose()
"""


def test_processes_opening_a_new_database_at_once_take_turns(database: str) -> None:
    start = f"{time.time() + 2:.3f}"  # after every process has imported amber
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, database, start],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    engine = connect(database)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
    engine.dispose()


def test_database_from_a_newer_amber_is_refused(database: str) -> None:
    engine = connect(database)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(UserError, match="newer amber"):
        connect(database)


def test_a_database_holding_other_tables_is_refused(database: str) -> None:
    other = sa.create_engine(database_url(database))
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(UserError, match=r"tables that are not amber's \(customers\)"):
        connect(database)
    assert sa.inspect(other).get_table_names() == ["customers"]  # nothing was added
    other.dispose()


def test_sqlite_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = connect(tmp_path / "a.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match=r"not an amber database|cannot open"):
        connect(bad)
    assert bad.read_bytes() == b"this is not sqlite" * 100


def test_folder_as_database(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder"):
        connect(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        connect(tmp_path / "no" / "a.db")


def test_unknown_url_scheme() -> None:
    with pytest.raises(UserError, match="cannot use database"):
        connect("nosuchdb://x/y")
    with pytest.raises(UserError, match="not a URL"):
        connect("postgresql://[::1/x")


def test_postgresql_urls_use_psycopg_3_and_passwords_are_never_shown() -> None:
    for given in ("postgresql://a:pw@h/d", "postgres://a:pw@h/d"):
        assert database_url(given) == "postgresql+psycopg://a:pw@h/d"
    assert display_url("postgresql://a:pw@h/d?password=pw2") == (
        "postgresql://a:***@h/d?password=%2A%2A%2A"
    )
    assert display_url("amber.db") == "amber.db"


def test_an_unreachable_server_is_an_external_error_without_the_password() -> None:
    url = f"postgresql://amber:s3cret@127.0.0.1:{_closed_port()}/test"
    with pytest.raises(ExternalError, match="cannot reach database") as caught:
        connect(url)
    assert "amber:***@127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)


@postgresql_only
def test_a_missing_database_or_schema_on_the_server_is_a_user_error(
    databases: Databases,
) -> None:
    assert databases.server is not None
    server = databases.server.url.set(drivername="postgresql")
    missing = server.set(database="amber_no_such_database")
    with pytest.raises(UserError, match=r"does not exist.*create it"):
        connect(missing.render_as_string(hide_password=False))
    no_schema = server.update_query_dict({"options": "-csearch_path=amber_no_such_schema"})
    with pytest.raises(UserError, match=r"schema .* does not exist"):
        connect(no_schema.render_as_string(hide_password=False))


def test_the_cli_exits_3_when_the_database_server_is_down(tmp_path: Path) -> None:
    url = f"postgresql://amber:s3cret@127.0.0.1:{_closed_port()}/test"
    result = run_cli("bank", "list", "--db", url, "--vault", str(tmp_path / "vault"))
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("Error: cannot reach database 'postgresql://amber:***@")
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
