"""Opening the database: a SQLite path or a PostgreSQL URL, and migrations to the latest schema.

``--db`` is a SQLite file path (``amber.db``, ``sqlite:///amber.db``) or a PostgreSQL URL
(``postgresql://user@host:5432/name``; ``postgres://`` is read the same). PostgreSQL is
reached with psycopg 3; a URL's ``options=-csearch_path%3Dname`` puts amber in that schema.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import re
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event

from amber.errors import AmberError, DatabaseGoneError, ExternalError, MissingExtraError, UserError
from amber.store.tables import database_instance

if TYPE_CHECKING:  # Alembic is imported where migrations run: it is slow to import
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: Seconds to wait for a database server to answer before giving up.
CONNECT_TIMEOUT = 10
#: Seconds a PostgreSQL statement may run (lock waits included), unacknowledged data may
#: wait on the network, and a request may wait for a pooled connection, before amber gives
#: up (HTTP 503, exit 3). ``AMBER_DB_TIMEOUT`` overrides it; migrations have no limit.
DB_TIMEOUT = 30
#: Seconds past ``AMBER_DB_TIMEOUT`` (at most) that amber waits for an answer on a PostgreSQL
#: connection before closing it itself: the server's own limit answers first when it can.
DEADLINE_MARGIN = 5
#: TCP keepalives on PostgreSQL connections: probe after this many idle seconds, ...
KEEPALIVE_IDLE = 30
#: ... every this many seconds, and drop the connection after this many unanswered probes.
KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 3
#: PostgreSQL errors (SQLSTATE) that mean the server refused, not that the input was wrong.
_REFUSED = ("28", "53", "57", "08")  # sign-in, resources, shutting down, connection
_MISSING_DATABASE = re.compile(r'FATAL: database ".*" does not exist')


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for ``db``: a URL is kept, anything else is a SQLite file path.

    ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver. Raises
    ``UserError`` for text that looks like a URL but is not one.
    """
    text = str(db)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise UserError(
            f"database {text.split('://')[0] + '://…'!r} is not a URL SQLAlchemy can read; "
            "give a file path or a URL such as postgresql://user@host:5432/amber"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def display_url(db: str | Path) -> str:
    """``db`` as it may be shown in messages and logs: with any password masked."""
    text = str(db)
    if "://" not in text:
        return text
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        return text.split("://")[0] + "://…"
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


def instance_id(engine: sa.Engine) -> str:
    """The random id this database was given when its schema was created."""
    with engine.connect() as conn:
        return str(conn.execute(sa.select(database_instance.c.id)).scalar_one())


def db_timeout() -> float:
    """``AMBER_DB_TIMEOUT`` seconds, or ``DB_TIMEOUT``.

    Raises ``UserError`` for a value that is not a number of seconds above 0.
    """
    text = os.environ.get("AMBER_DB_TIMEOUT")
    if not text:
        return DB_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"AMBER_DB_TIMEOUT={text!r} is not a number of seconds above 0")
    return seconds


def database_failed(exc: sa.exc.OperationalError | sa.exc.TimeoutError) -> str:
    """What to tell a person when the database stops answering after it was opened."""
    if isinstance(exc, sa.exc.TimeoutError):  # every pooled connection stayed busy
        return (
            "the database failed (no connection came free within the time limit: it is "
            "slow or not answering); check that it is up and reachable, then retry"
        )
    reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    if "timeout expired" in reason:  # connecting: libpq's words, amber's limit
        reason += f" after {min(CONNECT_TIMEOUT, max(2, math.ceil(db_timeout())))} s"
    return f"the database failed ({reason}); check that it is up and reachable, then retry"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for other databases."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


#: How long a SQLite connection waits for another process's lock.
SQLITE_WAIT_SECONDS = 30


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_WAIT_SECONDS * 1000}")
    # Turning a new file to WAL needs it to itself, and SQLite refuses at once (without
    # waiting) while other processes open it too: take turns until the wait is over.
    deadline = time.monotonic() + SQLITE_WAIT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_engine(url: str | Path, *, hold_file: bool = False) -> sa.Engine:
    """An engine on a SQLite URL or file: WAL mode, foreign keys on, waits up to 30 s for
    another process's write to finish.

    With ``hold_file`` (amber's own database) the engine holds on to the file that exists
    now: it never creates a file (a new, empty database) in its place, and a file removed
    or replaced while it runs makes every use raise ``DatabaseGoneError``.
    """
    engine = sa.create_engine(url if isinstance(url, str) else f"sqlite:///{url}")
    event.listen(engine, "connect", _sqlite_pragmas)
    file = sqlite_path(engine.url.render_as_string(hide_password=False))
    if hold_file and file is not None and file.exists():
        guard = _SqliteFile(file)
        event.listen(engine, "do_connect", guard.connect)
        event.listen(engine, "checkout", guard.checkout)
    return engine


class _SqliteFile:
    """The file a SQLite engine opened (its device and inode), checked on each use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = _identity(path)

    def check(self) -> None:
        """Raises ``DatabaseGoneError`` if the file is gone or is another file now."""
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            raise DatabaseGoneError(
                f"the database file {str(self.path)!r} was removed while amber was running; "
                "put it back (or restore it from a backup) and restart amber: amber does "
                "not start a new, empty database in its place"
            ) from None
        if identity != self.identity:
            raise DatabaseGoneError(
                f"the database file {str(self.path)!r} was replaced by another file while "
                "amber was running; restart amber to use the file now there"
            )

    def connect(self, _dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> None:
        """Open the file read-write but never create it (SQLite's ``mode=rw``)."""
        self.check()
        cargs[:1] = [f"file:{quote(str(self.path))}?mode=rw"]
        cparams["uri"] = True

    def checkout(self, _dbapi: Any, _record: Any, _proxy: Any) -> None:
        """A pooled connection may hold a removed file open: drop it and connect again
        (which raises ``DatabaseGoneError`` saying why)."""
        try:
            self.check()
        except DatabaseGoneError as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc


def _identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


class _Watchdog:
    """One thread that shuts down the socket of a PostgreSQL connection whose wait for the
    server outlives its deadline, so that the wait ends with an error instead of never."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.armed: dict[int, int] = {}  # ticket: socket file descriptor
        self.deadlines: list[tuple[float, int]] = []  # (monotonic time, ticket), a heap
        self.fired: set[int] = set()
        self.tickets = itertools.count()
        self.thread: threading.Thread | None = None

    def arm(self, fd: int, seconds: float) -> int:
        with self.changed:
            ticket = next(self.tickets)
            self.armed[ticket] = fd
            heapq.heappush(self.deadlines, (time.monotonic() + seconds, ticket))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="amber-db-watchdog")
                self.thread.daemon = True
                self.thread.start()
            elif len(self.armed) == 1:
                self.changed.notify()
            return ticket

    def disarm(self, ticket: int) -> bool:
        """Stop watching; ``True`` if the deadline passed and the socket was shut down."""
        with self.changed:
            self.armed.pop(ticket, None)
            if ticket in self.fired:
                self.fired.discard(ticket)
                return True
            return False

    def _run(self) -> None:
        while True:
            with self.changed:
                while self.deadlines and self.deadlines[0][1] not in self.armed:
                    heapq.heappop(self.deadlines)  # answered in time
                if not self.deadlines:
                    self.changed.wait()
                    continue
                due, ticket = self.deadlines[0]
                if time.monotonic() < due:
                    self.changed.wait(due - time.monotonic())
                    continue
                heapq.heappop(self.deadlines)
                fd = self.armed.pop(ticket)
                self.fired.add(ticket)
                # Still under the lock: the connection waits, so its socket is still open.
                try:
                    with socket.socket(fileno=os.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)  # the wait sees the end at once
                except OSError:
                    pass


_watchdog = _Watchdog()


def _guarded_connection_class() -> type[Any]:
    """psycopg's connection with a deadline on every wait for the server.

    Statements, fetches from server-side cursors, commits, rollbacks and the pool's ping
    all wait in ``Connection.wait``; a wait past ``limit`` seconds shuts the socket down
    and raises ``OperationalError`` naming the limit, and the broken connection is dropped
    by the pool. ``limit`` ``None`` (migrations) waits without one.
    """
    import psycopg

    class GuardedConnection(psycopg.Connection[Any]):
        limit: float | None = None

        def wait(self, *args: Any, **kwargs: Any) -> Any:
            if self.limit is None:
                return super().wait(*args, **kwargs)
            ticket = _watchdog.arm(self.pgconn.socket, self.limit)
            try:
                result = super().wait(*args, **kwargs)
            except BaseException as exc:
                if _watchdog.disarm(ticket):
                    raise psycopg.OperationalError(
                        f"no answer within {self.limit:g} s (AMBER_DB_TIMEOUT plus a "
                        "margin): amber closed the connection"
                    ) from exc
                raise
            _watchdog.disarm(ticket)
            return result

    return GuardedConnection


@contextmanager
def no_deadline(connection: sa.Connection) -> Iterator[None]:
    """No client-side deadline on ``connection`` inside the block (a migration may be long)."""
    raw = connection.connection.dbapi_connection
    limit = getattr(raw, "limit", None)
    if limit is None:
        yield
        return
    raw.limit = None  # type: ignore[union-attr]
    try:
        yield
    finally:
        raw.limit = limit  # type: ignore[union-attr]


def _create_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sqlite_engine(url, hold_file=True)
    if parsed.get_backend_name() != "postgresql":
        return sa.create_engine(url)
    timeout = db_timeout()
    options: dict[str, Any] = {
        "connect_timeout": min(CONNECT_TIMEOUT, max(2, math.ceil(timeout))),  # libpq: 2 s at least
        # A server that stops answering mid-connection: keepalives find a silent peer,
        # tcp_user_timeout (ms) data the network never acknowledged, and statement_timeout
        # (ms) a statement that runs or waits for a lock too long.
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": int(timeout * 1000),
    }
    options = {k: v for k, v in options.items() if k not in parsed.query}  # the URL's win
    given = parsed.query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    if "statement_timeout" not in given:
        options["options"] = f"{given} -c statement_timeout={int(timeout * 1000)}".strip()
    # A long-running service outlives server restarts: test a pooled connection before use.
    engine = sa.create_engine(url, connect_args=options, pool_pre_ping=True, pool_timeout=timeout)
    # A server (or relay) that takes the query and never answers: amber's own deadline.
    guarded, limit = _guarded_connection_class(), timeout + min(timeout, DEADLINE_MARGIN)

    def connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        raw = guarded.connect(*cargs, **cparams)
        raw.limit = limit
        return raw

    event.listen(engine, "do_connect", connect)
    event.listen(engine, "handle_error", _failed_ping_is_a_lost_connection)
    return engine


def _failed_ping_is_a_lost_connection(context: sa.engine.ExceptionContext) -> None:
    """A pooled connection whose liveness check failed in any way is dropped and a new one
    opened. SQLAlchemy replaces it only when the driver calls it broken; a connection
    reset while psycopg still held the ping in flight is not yet, and restoring its
    autocommit setting then fails with ``ProgrammingError`` ("connection in transaction
    status ACTIVE"), which would reach a request as an error of amber's rather than the
    database's (HTTP 500, not 503)."""
    if context.is_pre_ping:
        context.is_disconnect = True


def connect(db: str | Path, *, create: bool = True, upgrade: bool = True) -> sa.Engine:
    """Open ``db`` (a path or URL) and bring its schema to the latest migration.

    Without ``create`` a SQLite file that does not exist is an error rather than a new,
    empty database; without ``upgrade`` the schema is left as it is (``schema_revision``
    says where it stands). Raises ``UserError`` for a path or database that cannot hold
    amber's data (a folder, a missing file, a file or schema that is not amber's, a schema
    from a newer amber, a database that does not exist) and ``ExternalError`` when a
    database server cannot be reached or refuses.
    """
    url = database_url(db)
    shown = display_url(db)
    file = sqlite_path(url)
    if file is not None:
        if file.is_dir():
            raise UserError(f"database path {str(file)!r} is a folder; give a file path")
        if not file.parent.is_dir():
            raise UserError(f"database folder {str(file.parent)!r} does not exist; create it first")
        if not file.exists():
            if not create:
                raise _missing_file(file)
            file.touch()  # an empty file is an empty SQLite database
    from alembic.util.exc import CommandError

    try:
        engine = _create_engine(url)
    except ModuleNotFoundError as exc:  # the driver of a database server
        MissingExtraError.check(exc, frozenset({"psycopg", "psycopg_binary"}), "postgres")
        raise UserError(
            f"cannot use database {shown!r} ({exc}); give a SQLite file path or a postgresql:// URL"
        ) from None
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise UserError(
            f"cannot use database {shown!r} ({exc}); give a SQLite file path or a postgresql:// URL"
        ) from None
    try:
        if upgrade:
            migrate(engine)
        else:
            with engine.connect():
                pass
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise _open_error(exc, file=file, shown=shown) from None
    except CommandError as exc:
        engine.dispose()
        raise UserError(
            f"database {shown!r} has a schema this amber does not know ({exc}); it was written "
            "by a newer amber: upgrade amber"
        ) from None
    except AmberError:
        engine.dispose()
        raise
    return engine


def _missing_file(file: Path) -> UserError:
    """The error for a SQLite file that is not there where a database is expected."""
    message = f"database {str(file)!r} does not exist; check --db or AMBER_DB"
    marker = file.with_name(file.name + ".index") / "database-instance"
    if marker.exists():  # the PDQ index beside it was built from a database at this path
        message += (
            f" ({str(marker.parent)!r} beside it shows a database was here: it was removed "
            "or moved; restore it from a backup)"
        )
    else:
        message += " (`amber bank create` or `amber token create` start a new one)"
    return UserError(message)


def _open_error(exc: sa.exc.DBAPIError, *, file: Path | None, shown: str) -> AmberError:
    """The error to report when opening a database failed with ``exc``."""
    reason = " ".join(str(exc.orig).split())  # drivers' messages span lines
    if file is not None:
        if isinstance(exc, sa.exc.OperationalError):
            return UserError(f"cannot open database {str(file)!r}: {reason}")
        return UserError(f"{str(file)!r} is not an amber database: {reason}")
    state = str(getattr(exc.orig, "sqlstate", None) or "")
    if not state and isinstance(exc, sa.exc.OperationalError):
        # Failed while connecting: libpq gives no SQLSTATE, only the server's message.
        if _MISSING_DATABASE.search(reason):
            return UserError(f"database {shown!r} does not exist: {reason}; create it first")
        if "FATAL" in reason:
            return ExternalError(f"database {shown!r} refused the connection: {reason}")
        return ExternalError(f"cannot reach database {shown!r}: {reason}")
    if state == "3F000":
        return UserError(f"the schema of database {shown!r} does not exist: {reason}; create it")
    if state == "42501":
        return ExternalError(f"database {shown!r} refused amber: {reason}; grant it the rights")
    if state.startswith(_REFUSED):
        return ExternalError(f"database {shown!r} failed: {reason}")
    return UserError(f"{shown!r} is not an amber database: {reason}")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _shown(engine: sa.Engine) -> str:
    file = sqlite_path(engine.url.render_as_string(hide_password=False))
    return str(file) if file is not None else engine.url.render_as_string(hide_password=True)


def _revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def schema_revision(engine: sa.Engine) -> tuple[str | None, str]:
    """The database's migration revision (``None``: no amber schema) and amber's newest."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as connection:
        return _revision(connection), str(head)


def migrate(engine: sa.Engine) -> None:
    """Upgrade the schema to the newest migration; does nothing when already there.

    Processes that open a new PostgreSQL database at once take turns. Raises ``UserError``
    for a database (or schema) that holds other tables but none of amber's.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        if _revision(connection) == head:
            return
    # No client-side deadline either: a migration (and its commit) may be long.
    with engine.connect() as connection, no_deadline(connection), connection.begin():
        # One migration at a time; whoever waited finds the schema migrated.
        if connection.dialect.name == "postgresql":
            schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
            key = zlib.crc32(f"amber migrate {schema}".encode())
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")  # may be long
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, and atomic DDL
        current = _revision(connection)
        if current == head:
            return
        if current is None:
            others = sa.inspect(connection).get_table_names()
            if others:
                listed = ", ".join(sorted(others)[:5]) + (", …" if len(others) > 5 else "")
                raise UserError(
                    f"database {_shown(engine)!r} holds tables that are not "
                    f"amber's ({listed}); give amber a database or schema of its own"
                )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
