"""Opening the database: a URL or a SQLite path, pragmas, and migrations to the latest schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event

from amber.errors import ExternalError, UserError

MIGRATIONS = Path(__file__).parent / "migrations"


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for ``db``: a URL is kept, anything else is a SQLite file path."""
    text = str(db)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for other databases."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def connect(db: str | Path) -> sa.Engine:
    """Open ``db`` (a path or URL) and bring its schema to the latest migration.

    Raises ``UserError`` for a path that cannot hold a database and ``ExternalError`` when
    a database server cannot be reached.
    """
    url = database_url(db)
    file = sqlite_path(url)
    if file is not None:
        if file.is_dir():
            raise UserError(f"database path {str(file)!r} is a folder; give a file path")
        if not file.parent.is_dir():
            raise UserError(f"database folder {str(file.parent)!r} does not exist; create it first")
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise UserError(f"cannot use database {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if file is not None:
            raise UserError(f"cannot open database {str(file)!r}: {exc.orig}") from None
        raise ExternalError(f"cannot reach database {url!r}: {exc.orig}") from None
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        raise UserError(f"{url!r} is not an amber database: {exc.orig}") from None
    except CommandError as exc:
        engine.dispose()
        raise UserError(
            f"database {url!r} has a schema this amber does not know ({exc}); it was written "
            "by a newer amber: upgrade amber"
        ) from None
    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: sa.Engine) -> None:
    """Upgrade the schema to the newest migration; does nothing when already there."""
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
