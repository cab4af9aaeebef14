"""The schema: Alembic migrations produce exactly the tables the code defines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from amber.errors import UserError
from amber.store.db import connect
from amber.store.tables import metadata


def test_migrations_match_table_definitions(tmp_path: Path) -> None:
    engine = connect(tmp_path / "a.db")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_twice_is_harmless_and_sqlite_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    connect(tmp_path / "a.db").dispose()
    engine = connect(tmp_path / "a.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0004"


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


def test_tables_exist(tmp_path: Path) -> None:
    engine = connect(tmp_path / "a.db")
    assert set(sa.inspect(engine).get_table_names()) >= {
        "banks",
        "bank_entries",
        "entry_signals",
        "decisions",
        "post_media",
    }


def test_database_from_a_newer_amber_is_refused(tmp_path: Path) -> None:
    engine = connect(tmp_path / "a.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(UserError, match="newer amber"):
        connect(tmp_path / "a.db")
