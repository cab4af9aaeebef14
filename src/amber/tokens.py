"""API tokens: named, scoped, shown once, stored only as a SHA-256 hash.

Scopes: ``ingest`` (submit posts, read decisions), ``review`` (the review queue and the
console), ``admin`` (banks, evidence, tokens, metrics). Tokens are 256-bit random
strings, so a plain SHA-256 is the right way to store them (no password stretching is
needed for values nobody can guess).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from amber.errors import AuthenticationError, ConflictError, NotFoundError, UserError
from amber.store.tables import api_tokens

PREFIX = "amber_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}")


class Scope(StrEnum):
    """What a token may do."""

    ingest = "ingest"
    review = "review"
    admin = "admin"


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token (never the secret itself)."""

    id: int
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The token as the CLI and the API write it (never its secret)."""
        return {
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from ``"ingest,review"`` or a list. Raises ``UserError`` naming a bad one."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if not names:
        raise UserError("give at least one scope: ingest, review or admin")
    try:
        return frozenset(Scope(n) for n in names)
    except ValueError:
        bad = next(n for n in names if n not in Scope.__members__)
        raise UserError(f"unknown scope {bad!r}; use ingest, review or admin") from None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenStore:
    """Create, check and revoke tokens."""

    def __init__(self, db: sa.Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.db = db
        self.clock = clock

    def create(self, name: str, scopes: Iterable[Scope]) -> tuple[Token, str]:
        """A new token and its secret (shown once). Raises ``ConflictError`` for a used name."""
        if not NAME.fullmatch(name):
            raise UserError(f"token name {name!r} is not allowed; use letters, digits, '_.@-'")
        scope_set = frozenset(scopes)
        if not scope_set:
            raise UserError("give at least one scope: ingest, review or admin")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        taken = ConflictError(f"a token called {name!r} exists; revoke it or pick a name")
        try:
            with self.db.begin() as conn:
                if conn.execute(
                    sa.select(api_tokens.c.id).where(api_tokens.c.name == name)
                ).first():
                    raise taken
                token_id = conn.execute(
                    api_tokens.insert()
                    .values(
                        name=name,
                        token_hash=_digest(secret),
                        scopes=",".join(sorted(scope_set)),
                        created_at=now,
                    )
                    .returning(api_tokens.c.id)
                ).scalar_one()
        except sa.exc.IntegrityError:
            raise taken from None  # created by another process since we looked
        return Token(token_id, name, scope_set, now), secret

    def authenticate(self, secret: str | None) -> Token:
        """The live token for ``secret``. Raises ``AuthenticationError`` otherwise."""
        if not secret or not secret.startswith(PREFIX):
            raise AuthenticationError(
                "missing or malformed token; send 'Authorization: Bearer "
                "amber_…' (create one with: amber token create)"
            )
        digest = _digest(secret)
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.token_hash == digest)
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise AuthenticationError("unknown token")
        if row.revoked_at is not None:
            raise AuthenticationError(f"token {row.name!r} was revoked")
        return _token(row)

    def revoke(self, name: str) -> None:
        """Revoke a token by name. Raises ``NotFoundError``."""
        with self.db.begin() as conn:
            done = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            ).rowcount
        if not done:
            raise NotFoundError(f"no live token called {name!r}")

    def all(self) -> list[Token]:
        """Every token, by name (in code-point order, whatever the database's collation)."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(api_tokens))
            return sorted((_token(r) for r in rows), key=lambda t: t.name)


def _token(row: sa.Row[tuple[object, ...]]) -> Token:
    return Token(
        int(row.id),
        str(row.name),
        frozenset(Scope(s) for s in str(row.scopes).split(",")),
        row.created_at,
        row.revoked_at,
    )
