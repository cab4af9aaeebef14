"""The console's own state: sign-in sessions, reviewers' settings, graphic items seen.

It lives in a small SQLite file beside the main database (``amber.db.console/``; for a
PostgreSQL database, beside the vault: ``amber-vault.console/``, shared by the processes
that share the vault), not in amber's schema: nothing here is evidence or a
decision, and losing it only signs reviewers out and resets their preferences.

A session is a random id. The browser holds ``id.signature`` (an HMAC-SHA256 under a key
kept in the same folder, mode 0600); the file holds only the id's SHA-256, the reviewer's
token name and scopes, a CSRF token and an expiry. No secret is in the cookie in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from amber.errors import AuthenticationError
from amber.store.db import sqlite_engine, sqlite_path
from amber.store.tables import UTCDateTime
from amber.tokens import Scope, Token

SESSION_FOR = timedelta(hours=12)

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("reviewer", sa.String(200), primary_key=True),
    sa.Column("blur", sa.Boolean, nullable=False),
    sa.Column("greyscale", sa.Boolean, nullable=False),
)

reveals = sa.Table(
    "reveals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("post_id", sa.String(500), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_reveals_reviewer_at", "reviewer", "at"),
)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in reviewer."""

    reviewer: str
    scopes: frozenset[Scope]
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Settings:
    """A reviewer's wellness settings; both on by default."""

    blur: bool = True
    greyscale: bool = True


def console_dir(db_url: str, vault: Path) -> Path:
    """Where the console keeps its state for a database at ``db_url``."""
    file = sqlite_path(db_url)
    if file is not None:
        return file.with_name(file.name + ".console")
    return vault.with_name(vault.name + ".console")


class ConsoleStore:
    """Sessions, settings and reveal counts in ``folder``."""

    def __init__(
        self, folder: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.clock = clock
        self.key = _key(folder / "session.key")
        self.db = sqlite_engine(folder / "console.sqlite")
        with self.db.begin() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # workers starting at once take turns
            metadata.create_all(conn)

    def close(self) -> None:
        """Release the database file."""
        self.db.dispose()

    # -- sessions ------------------------------------------------------------------------

    def sign_in(self, token: Token) -> str:
        """Start a session for ``token``; returns the cookie value."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.expires_at < now))
            conn.execute(
                sessions.insert().values(
                    id_hash=_digest(session_id),
                    reviewer=token.name,
                    scopes=",".join(sorted(token.scopes)),
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + SESSION_FOR,
                )
            )
        return f"{session_id}.{self._sign(session_id)}"

    def session(self, cookie: str | None) -> Session:
        """The live session a cookie names. Raises ``AuthenticationError``."""
        session_id, _, signature = (cookie or "").partition(".")
        if not session_id or not hmac.compare_digest(signature, self._sign(session_id)):
            raise AuthenticationError("sign in to the console with a review token")
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(sessions).where(sessions.c.id_hash == _digest(session_id))
            ).first()
        if row is None or row.expires_at <= self.clock():
            raise AuthenticationError("the console session ended; sign in again")
        scopes = frozenset(Scope(s) for s in str(row.scopes).split(","))
        return Session(row.reviewer, scopes, row.csrf, row.expires_at)

    def sign_out(self, cookie: str | None) -> None:
        """End the session a cookie names (nothing if it names none)."""
        session_id = (cookie or "").partition(".")[0]
        with self.db.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.id_hash == _digest(session_id)))

    def _sign(self, session_id: str) -> str:
        return hmac.new(self.key, session_id.encode(), hashlib.sha256).hexdigest()

    # -- settings and reveals ------------------------------------------------------------

    def settings(self, reviewer: str) -> Settings:
        """A reviewer's settings (the defaults until they change them)."""
        with self.db.connect() as conn:
            row = conn.execute(sa.select(settings).where(settings.c.reviewer == reviewer)).first()
        return Settings() if row is None else Settings(bool(row.blur), bool(row.greyscale))

    def save_settings(self, reviewer: str, chosen: Settings) -> None:
        """Store a reviewer's settings."""
        with self.db.begin() as conn:
            conn.execute(settings.delete().where(settings.c.reviewer == reviewer))
            conn.execute(
                settings.insert().values(
                    reviewer=reviewer, blur=chosen.blur, greyscale=chosen.greyscale
                )
            )

    def count_reveal(self, reviewer: str, post_id: str, position: int) -> int:
        """Count one look at a graphic item; returns the reviewer's count for today."""
        with self.db.begin() as conn:
            conn.execute(
                reveals.insert().values(
                    reviewer=reviewer, post_id=post_id, position=position, at=self.clock()
                )
            )
        return self.seen_today(reviewer)

    def seen_today(self, reviewer: str) -> int:
        """How many graphic items the reviewer has looked at since midnight UTC."""
        midnight = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        query = (
            sa.select(sa.func.count())
            .select_from(reveals)
            .where(reveals.c.reviewer == reviewer, reveals.c.at >= midnight)
        )
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _key(path: Path) -> bytes:
    """The session-signing key, created once with mode 0600. Processes starting at once
    agree on one: each writes a candidate in full, and the first to link it in wins."""
    if not path.exists():
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            candidate.unlink()
    return path.read_bytes()
