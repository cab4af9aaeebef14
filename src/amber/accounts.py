"""Accounts: every decided post's author, their record and what it recommends.

An account is an author of one client's posts (the post's ``author``; another client's
author of the same name is someone else). Nothing is stored for it: its record is read
from the decisions of its posts (each post's newest version), weighed by the policy's
``[accounts]`` table (``amber.policy.accounts``: strikes by verdict, decaying with age,
taken back by a reviewer's rejection or a reversal). ``AccountStore.standing`` is what
the policy sees when it decides the author's next post; ``show`` and ``list`` are the
account views of the command line, the API and the console (docs/accounts.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from amber.errors import ConflictError, NotFoundError, UserError
from amber.policy.accounts import AccountPolicy, AccountStanding
from amber.policy.outcome import Verdict
from amber.policy.reports import SIGNAL as REPORT_SIGNAL
from amber.store.tables import decisions

#: The most strike-bearing posts of one author read to weigh their record (the newest).
MAX_STRIKES_READ = 1000
#: The largest ``limit`` of an account's history or of the account list.
MAX_LIMIT = 10_000
#: How many clients an ambiguous author's error names.
MAX_SHOWN = 5


def decision_links(post_id: str, client: str) -> dict[str, str]:
    """Where a decision is read: the API's decision and statements, the console's item."""
    post, whose = quote(post_id, safe=""), quote(client, safe="")
    return {
        "decision": f"/v1/decisions/{post}?client={whose}",
        "statements": f"/v1/statements/{post}?client={whose}",
        "console": f"/console/items/{post}",
    }


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account's record at one moment: its strikes (decayed), the posts they come
    from, its threats to life in the window, and the account action they recommend."""

    author: str
    client: str
    strikes: float
    posts: int
    threats: int
    recommendation: str | None
    last_decided_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The summary as ``amber account list --format jsonl`` and ``GET /v1/accounts``
        write it."""
        return {
            "author": self.author,
            "client": self.client,
            "strikes": round(self.strikes, 3),
            "strike_posts": self.posts,
            "threats_to_life": self.threats,
            "recommendation": self.recommendation,
            "last_decided_at": None if self.last_decided_at is None else _iso(self.last_decided_at),
        }


@dataclass(frozen=True, slots=True)
class AccountDecision:
    """One decided post of an account, as its history lists it."""

    post_id: str
    client: str
    version: int
    verdict: str
    review_state: str
    actions: list[str]
    threat_to_life: bool
    created_at: datetime | None
    first_scanned_at: datetime
    scanned_at: datetime
    #: The post's strike now (decayed; 0 when it is none).
    strike: float
    #: ``retro-hunt`` when a later bank entry found it (``amber.retrohunt``).
    found_by: str | None
    #: How many user reports it has (``amber.reports``).
    reports: int

    def to_json(self) -> dict[str, Any]:
        """The decision as the account's history writes it, with its links."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "verdict": self.verdict,
            "review_state": self.review_state,
            "actions": self.actions,
            "threat_to_life": self.threat_to_life,
            "created_at": None if self.created_at is None else _iso(self.created_at),
            "first_scanned_at": _iso(self.first_scanned_at),
            "scanned_at": _iso(self.scanned_at),
            "strike": round(self.strike, 3),
            "found_by": self.found_by,
            "reports": self.reports,
            "links": decision_links(self.post_id, self.client),
        }


@dataclass(frozen=True, slots=True)
class Account:
    """An account's view: its record, its posts by verdict and its decisions, newest first."""

    summary: AccountSummary
    #: Every decided post of the account (no window), by verdict.
    verdicts: dict[str, int]
    first_decided_at: datetime | None
    history: list[AccountDecision]
    #: The account policy that weighed it.
    policy: AccountPolicy

    def to_json(self) -> dict[str, Any]:
        """The account as ``amber account show --format json`` and
        ``GET /v1/accounts/{author}`` write it."""
        policy = self.policy
        return {
            **self.summary.to_json(),
            "posts": sum(self.verdicts.values()),
            "verdicts": self.verdicts,
            "first_decided_at": None
            if self.first_decided_at is None
            else _iso(self.first_decided_at),
            "policy": {
                "enabled": policy.enabled,
                "half_life_days": policy.half_life_days,
                "window_days": policy.window_days,
                "strikes": dict(policy.strikes),
                "thresholds": dict(policy.thresholds),
                "threat_to_life": policy.threat_to_life,
            },
            "decisions": [d.to_json() for d in self.history],
        }


class AccountStore:
    """Account records on one database, weighed by one account policy."""

    def __init__(
        self, db: sa.Engine, *, policy: AccountPolicy, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    def _strike_rows(self) -> sa.Select[Any]:
        """Decisions that may weigh: a verdict with a weight, a reviewer's confirmation, a
        threat to life; with what weighing them needs."""
        weighted = [v for v, w in self.policy.strikes.items() if w > 0]
        return sa.select(
            decisions.c.client,
            decisions.c.author,
            decisions.c.post_id,
            decisions.c.verdict,
            decisions.c.review_state,
            decisions.c.threat_to_life,
            decisions.c.first_scanned_at,
        ).where(
            sa.or_(
                decisions.c.verdict.in_(weighted),
                decisions.c.review_state == "confirmed",
                decisions.c.threat_to_life.is_(True),
            )
        )

    def _weigh(self, rows: Sequence[Any], now: datetime) -> tuple[float, int, int]:
        """(strikes, strike posts, threats) of rows of ``_strike_rows``."""
        strikes, posts, threats = 0.0, 0, 0
        for row in rows:
            weight = self.policy.weight(row.verdict, row.review_state)
            decayed = self.policy.decayed(weight, now - row.first_scanned_at)
            if decayed > 0:
                strikes += decayed
                posts += 1
            if row.threat_to_life and row.review_state not in ("rejected", "reversed"):
                threats += 1
        return strikes, posts, threats

    def _recommend(self, strikes: float, threats: int) -> str | None:
        if not self.policy.enabled:
            return None
        threat = self.policy.threat_to_life if threats else None
        return self.policy.strongest(self.policy.reached(strikes), threat)

    def standing(
        self,
        author: str,
        *,
        client: str,
        now: datetime | None = None,
        exclude: str | None = None,
    ) -> AccountStanding:
        """``author``'s record (``client``'s posts) at ``now`` (default: the clock), from
        their posts in the window other than ``exclude`` (the post being decided)."""
        now = self.clock() if now is None else now
        query = (
            self._strike_rows()
            .where(
                decisions.c.client == client,
                decisions.c.author == author,
                decisions.c.first_scanned_at >= now - self.policy.window,
                decisions.c.first_scanned_at <= now,
            )
            .order_by(decisions.c.first_scanned_at.desc())
            .limit(MAX_STRIKES_READ)
        )
        if exclude is not None:
            query = query.where(decisions.c.post_id != exclude)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        strikes, posts, threats = self._weigh(rows, now)
        return AccountStanding(author, strikes, posts, threats)

    def summary(self, author: str, *, client: str, now: datetime | None = None) -> AccountSummary:
        """``author``'s record now and the account action it recommends."""
        now = self.clock() if now is None else now
        standing = self.standing(author, client=client, now=now)
        with self.db.connect() as conn:
            last = conn.execute(
                sa.select(sa.func.max(decisions.c.first_scanned_at)).where(
                    decisions.c.client == client, decisions.c.author == author
                )
            ).scalar_one_or_none()
        return AccountSummary(
            author,
            client,
            standing.strikes,
            standing.posts,
            standing.threats,
            self._recommend(standing.strikes, standing.threats),
            last,
        )

    def client_of(self, author: str, clients: Sequence[str] | None = None) -> str:
        """The client holding posts of ``author`` (one of ``clients``, when given; their
        order is the preference). Raises ``NotFoundError`` for an author with no decided
        post, ``ConflictError`` when several clients hold one and no order is given."""
        _check_author(author)
        query = sa.select(decisions.c.client).where(decisions.c.author == author).distinct()
        if clients is not None:
            query = query.where(decisions.c.client.in_(list(clients)))
        with self.db.connect() as conn:
            found = sorted(conn.execute(query.limit(MAX_SHOWN + 1)).scalars())
        if not found:
            raise NotFoundError(f"no decided post has author {author!r}")
        if len(found) == 1:
            return str(found[0])
        if clients is not None:
            return next(c for c in clients if c in found)
        shown = ", ".join(repr(c) for c in found[:MAX_SHOWN])
        raise ConflictError(
            f"author {author!r} posted as clients {shown}; say which (--client NAME, ?client=)"
        )

    def show(
        self,
        author: str,
        *,
        client: str | None = None,
        clients: Sequence[str] | None = None,
        limit: int = 100,
    ) -> Account:
        """``author``'s account: its record, its posts by verdict and its ``limit`` newest
        decisions. ``client`` names whose author; without it, the only client holding
        posts of ``author`` (among ``clients``, in their order, when given). Raises
        ``NotFoundError``, ``ConflictError`` (several clients), ``UserError`` for a bad
        ``limit``."""
        _check_limit(limit)
        if client is None:
            client = self.client_of(author, clients)
        else:
            _check_author(author)
        now = self.clock()
        mine = sa.and_(decisions.c.client == client, decisions.c.author == author)
        with self.db.connect() as conn:
            counts = {
                str(row.verdict): int(row.n)
                for row in conn.execute(
                    sa.select(decisions.c.verdict, sa.func.count().label("n"))
                    .where(mine)
                    .group_by(decisions.c.verdict)
                )
            }
            if not counts:
                raise NotFoundError(f"no decided post of client {client!r} has author {author!r}")
            first = conn.execute(
                sa.select(sa.func.min(decisions.c.first_scanned_at)).where(mine)
            ).scalar_one()
            rows = conn.execute(
                sa.select(
                    decisions.c.post_id,
                    decisions.c.client,
                    decisions.c.version,
                    decisions.c.verdict,
                    decisions.c.review_state,
                    decisions.c.actions,
                    decisions.c.reasons,
                    decisions.c.threat_to_life,
                    decisions.c.created_at,
                    decisions.c.first_scanned_at,
                    decisions.c.scanned_at,
                )
                .where(mine)
                .order_by(decisions.c.first_scanned_at.desc(), decisions.c.id.desc())
                .limit(limit)
            ).all()
        history = [
            AccountDecision(
                post_id=r.post_id,
                client=r.client,
                version=int(r.version),
                verdict=r.verdict,
                review_state=r.review_state,
                actions=list(r.actions),
                threat_to_life=bool(r.threat_to_life),
                created_at=r.created_at,
                first_scanned_at=r.first_scanned_at,
                scanned_at=r.scanned_at,
                strike=self.policy.decayed(
                    self.policy.weight(r.verdict, r.review_state), now - r.first_scanned_at
                ),
                found_by=next((x["found_by"] for x in r.reasons if x.get("found_by")), None),
                reports=sum(1 for x in r.reasons if x.get("signal") == REPORT_SIGNAL),
            )
            for r in rows
        ]
        verdicts = {v.value: counts.get(v.value, 0) for v in Verdict}
        return Account(
            self.summary(author, client=client, now=now), verdicts, first, history, self.policy
        )

    def with_strikes(
        self, *, clients: Sequence[str] | None = None, limit: int = 100
    ) -> list[AccountSummary]:
        """Accounts with a strike or a threat to life in the window, the most strikes
        first (of ``clients`` only, when given); at most ``limit``. Raises ``UserError``
        for a bad ``limit``."""
        _check_limit(limit)
        now = self.clock()
        query = self._strike_rows().where(
            decisions.c.author.is_not(None),
            decisions.c.first_scanned_at >= now - self.policy.window,
        )
        if clients is not None:
            query = query.where(decisions.c.client.in_(list(clients)))
        by_account: dict[tuple[str, str], list[Any]] = {}
        with self.db.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=10_000)):
                by_account.setdefault((row.client, row.author), []).append(row)
        found = []
        for (client, author), rows in by_account.items():
            strikes, posts, threats = self._weigh(rows, now)
            if posts == 0 and threats == 0:
                continue
            found.append(
                AccountSummary(
                    author,
                    client,
                    strikes,
                    posts,
                    threats,
                    self._recommend(strikes, threats),
                    max(r.first_scanned_at for r in rows),
                )
            )
        found.sort(key=lambda a: (-a.strikes, -a.threats, a.client, a.author))
        return found[:limit]


def _check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"limit {limit!r} is out of range; give 1 to {MAX_LIMIT}")


def _check_author(author: object) -> None:
    if not isinstance(author, str) or not author or len(author) > 500 or "\x00" in author:
        raise UserError(
            f"author {author!r} is not an author amber could have stored: give the post's "
            "'author', 1 to 500 characters"
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat()
