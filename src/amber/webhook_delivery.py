"""Sending the webhook outbox: claim due deliveries, POST them signed, record how it went.

A ``Deliverer`` claims pending deliveries that are due by taking a lease on their rows
(one statement; on PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``), so any
number of processes can send from one database without sending a row twice at once; a
sender that dies leaves its rows to be claimed again when the lease ends. Each delivery
is POSTed with its stored body and the headers ``X-Amber-Event``, ``X-Amber-Delivery``
(its id, the same on every attempt) and ``X-Amber-Signature`` (``amber.webhooks.sign``),
with a timeout; a 2xx answer delivers it. Any other answer, or none, is a failed
attempt: the delivery is tried again after an exponential backoff with jitter
(``Backoff``), and after ``max_attempts`` it is failed (dead): listed, counted in the
metrics, and sent again only by hand (``WebhookStore.retry``).

A delivery is not claimed while an earlier one about the same post for the same webhook
is pending, so a receiver gets one post's changes in the order they were made (a hand
retry of a failed one can still arrive after later ones: compare ``occurred_at``).
Delivery is at least once: a receiver that answered after the timeout, or a sender that
died after sending, makes a repeat with the same ``X-Amber-Delivery``, which the receiver
drops (docs/webhooks.md).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from amber import __version__
from amber.store.tables import webhook_deliveries, webhooks
from amber.webhooks import DeliveryState, sign

#: The first retry waits about this long; each next one twice as long, up to ``CAP``.
BASE = timedelta(seconds=10)
CAP = timedelta(hours=1)
#: Attempts before a delivery is failed: with ``BASE`` and ``CAP``, about 11 to 22 hours
#: of retries (a receiver down for a night is caught up).
MAX_ATTEMPTS = 30
#: Seconds to connect, and to wait for the answer, on each attempt.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
#: How long a claim is held: longer than an attempt takes (the timeouts above, per batch).
LEASE = timedelta(minutes=2)
#: Deliveries claimed and sent at once by one sender.
BATCH = 8
#: Characters of a failed answer's body kept in ``last_error``.
ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before the next attempt: ``base`` after the first failure,
    doubling after each, at most ``cap``, times a random factor in [0.5, 1] (jitter, so
    that deliveries failed together do not all come back at once). ``rng`` draws it."""

    base: timedelta = BASE
    cap: timedelta = CAP
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failed attempt (1 or more)."""
        exponent = min(max(failures, 1) - 1, 40)  # 2**40 * base is past any cap
        longest = min(self.cap, self.base * (1 << exponent))
        return longest * self.rng.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: an HTTP status and the start of the body, or ``None`` and
    why no answer came."""

    status: int | None
    text: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender(Protocol):
    """POSTs one delivery (the one thing the deliverer does outside the database)."""

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer: ...


@dataclass(frozen=True, slots=True)
class HttpSender:
    """POSTs with ``requests``: a timeout to connect and to read, no redirects followed
    (a 3xx is a failed attempt: a signed body goes only where it was addressed), at most
    ``ERROR_TEXT`` characters of the answer read."""

    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        import requests

        try:
            with requests.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                text = ""
                if not 200 <= response.status_code < 300:
                    raw = response.raw.read(ERROR_TEXT * 4, decode_content=True) or b""
                    text = raw.decode("utf-8", "replace")[:ERROR_TEXT]
                return Answer(response.status_code, text)
        except requests.Timeout as exc:
            return Answer(None, f"no answer in time ({_reason(exc)})")
        except requests.RequestException as exc:
            return Answer(None, _reason(exc))


def _reason(exc: BaseException) -> str:
    """The innermost cause's message: urllib3 wraps the socket's error twice."""
    while exc.__context__ is not None and str(exc.__context__):
        exc = exc.__context__
    return f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a sender holds the lease on, with what sending it needs."""

    id: int
    delivery: str
    webhook_id: int
    event: str
    body: str
    attempts: int
    url: str
    secret: str


@dataclass(slots=True)
class DeliveryReport:
    """What one pass (``Deliverer.run_once``) did: the ids delivered, those that failed an
    attempt and will be tried again (with when), and those given up on (failed)."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[tuple[str, datetime, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(self.delivered) + len(self.retrying) + len(self.failed)


def owner_name() -> str:
    """A sender's name for its leases: host, process and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    """Sends the outbox of one database. ``clock``, ``backoff`` and ``send`` are what the
    tests replace: nothing here sleeps or reads the time itself."""

    def __init__(
        self,
        db: sa.Engine,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff: Backoff | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        lease: timedelta = LEASE,
        batch: int = BATCH,
        send: Sender | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.lease = lease
        self.batch = batch
        self.send = send or HttpSender()
        self.owner = owner or owner_name()

    def claim(self, limit: int, *, due_by: datetime | None = None) -> list[Claimed]:
        """Take the lease on up to ``limit`` pending deliveries due by ``due_by`` (default
        now) that no live lease holds and no earlier pending delivery about the same post
        for the same webhook holds back; the soonest due first."""
        now = self.clock()
        due_by = now if due_by is None else due_by
        d = webhook_deliveries.alias("d")
        e = webhook_deliveries.alias("e")
        earlier = (
            sa.select(e.c.id)
            .where(
                e.c.webhook_id == d.c.webhook_id,
                e.c.client == d.c.client,
                e.c.post_id == d.c.post_id,
                e.c.state == DeliveryState.pending.value,
                e.c.id < d.c.id,
            )
            .exists()
        )
        pick = (
            sa.select(d.c.id)
            .where(
                d.c.state == DeliveryState.pending.value,
                d.c.next_attempt_at <= due_by,
                sa.or_(d.c.leased_until.is_(None), d.c.leased_until <= now),
                ~earlier,
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=d)  # SQLite: one writer at a time anyway
        )
        t = webhook_deliveries
        due = (
            sa.select(t.c.id)
            .where(
                t.c.state == DeliveryState.pending.value,
                t.c.next_attempt_at <= due_by,
                sa.or_(t.c.leased_until.is_(None), t.c.leased_until <= now),
            )
            .limit(1)
        )
        with self.db.connect() as conn:  # a read first: no write lock while nothing is due
            if conn.execute(due).first() is None:
                return []
        with self.db.begin() as conn:
            rows = conn.execute(
                t.update()
                .where(t.c.id.in_(pick))
                .values(leased_by=self.owner, leased_until=now + self.lease)
                .returning(t.c.id, t.c.delivery, t.c.webhook_id, t.c.event, t.c.body, t.c.attempts)
            ).all()
            if not rows:
                return []
            hooks = {
                h.id: h
                for h in conn.execute(
                    sa.select(webhooks.c.id, webhooks.c.url, webhooks.c.secret).where(
                        webhooks.c.id.in_({r.webhook_id for r in rows})
                    )
                )
            }
        claimed = [
            Claimed(
                int(r.id),
                r.delivery,
                int(r.webhook_id),
                r.event,
                r.body,
                int(r.attempts),
                hooks[r.webhook_id].url,
                hooks[r.webhook_id].secret,
            )
            for r in rows
            if r.webhook_id in hooks
        ]
        return sorted(claimed, key=lambda c: c.id)

    def attempt(self, claimed: Claimed) -> Answer:
        """POST one claimed delivery; never raises for the receiver's faults."""
        body = claimed.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"amber/{__version__}",
            "X-Amber-Event": claimed.event,
            "X-Amber-Delivery": claimed.delivery,
            "X-Amber-Signature": sign(claimed.secret, body),
            "X-Amber-Attempt": str(claimed.attempts + 1),
        }
        return self.send(claimed.url, body, headers)

    def record(self, claimed: Claimed, answer: Answer, report: DeliveryReport) -> None:
        """Store how an attempt went: delivered; or failed, to be tried again after the
        backoff or, at ``max_attempts``, failed for good. A failure is stored only while
        this sender still holds the lease (another may have taken it since)."""
        now = self.clock()
        t = webhook_deliveries
        with self.db.begin() as conn:
            if answer.ok:
                done = conn.execute(
                    t.update()
                    .where(t.c.id == claimed.id, t.c.state == DeliveryState.pending.value)
                    .values(
                        state=DeliveryState.delivered.value,
                        attempts=t.c.attempts + 1,
                        delivered_at=now,
                        last_attempt_at=now,
                        last_status=answer.status,
                        last_error=None,
                        leased_by=None,
                        leased_until=None,
                    )
                ).rowcount
                if done:
                    _count(conn, claimed.webhook_id, delivered=1)
                report.delivered.append(claimed.delivery)
                return
            why = (
                f"HTTP {answer.status}"
                + (f": {answer.text.strip()}" if answer.text.strip() else "")
                if answer.status is not None
                else answer.text
            )
            attempts = claimed.attempts + 1
            dead = attempts >= self.max_attempts
            retry_at = now + self.backoff.delay(attempts)
            done = conn.execute(
                t.update()
                .where(
                    t.c.id == claimed.id,
                    t.c.state == DeliveryState.pending.value,
                    t.c.leased_by == self.owner,
                )
                .values(
                    state=(DeliveryState.failed if dead else DeliveryState.pending).value,
                    attempts=attempts,
                    next_attempt_at=now if dead else retry_at,
                    last_attempt_at=now,
                    last_status=answer.status,
                    last_error=why[: ERROR_TEXT + 40],
                    leased_by=None,
                    leased_until=None,
                )
            ).rowcount
            if done:
                _count(conn, claimed.webhook_id, failures=1)
        if dead:
            report.failed.append((claimed.delivery, why))
        else:
            report.retrying.append((claimed.delivery, retry_at, why))

    def run_once(
        self, *, threads: int | None = None, stop: threading.Event | None = None
    ) -> DeliveryReport:
        """Send every delivery due now, ``batch`` at a time (in ``threads`` threads,
        default ``batch``), until none is left or ``stop`` is set: a delivery that fails
        is tried again in a later pass, after its backoff. Returns what was done."""
        report = DeliveryReport()
        started = self.clock()
        with ThreadPoolExecutor(max_workers=threads or self.batch) as pool:
            while stop is None or not stop.is_set():
                claimed = self.claim(self.batch, due_by=started)
                if not claimed:
                    break
                answers = list(pool.map(self.attempt, claimed))
                for one, answer in zip(claimed, answers, strict=True):
                    self.record(one, answer, report)
        return report

    def run(
        self,
        stop: threading.Event,
        *,
        every: float = 1.0,
        on_report: Callable[[DeliveryReport], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Pass after pass (``run_once``), ``every`` seconds apart, until ``stop`` is set.
        A pass that fails (the database away) is reported to ``on_error`` and tried again
        at the next."""
        while not stop.is_set():
            try:
                report = self.run_once(stop=stop)
            except Exception as exc:  # the database went away: the sender must go on
                if on_error is None:
                    raise
                on_error(exc)
            else:
                if on_report is not None and report.attempted:
                    on_report(report)
            if stop.wait(every):
                return


def _count(conn: sa.Connection, webhook_id: int, *, delivered: int = 0, failures: int = 0) -> None:
    conn.execute(
        webhooks.update()
        .where(webhooks.c.id == webhook_id)
        .values(delivered=webhooks.c.delivered + delivered, failures=webhooks.c.failures + failures)
    )


def next_due(db: sa.Engine) -> datetime | None:
    """When the soonest pending delivery is due (``None``: none pending)."""
    with db.connect() as conn:
        found: datetime | None = conn.execute(
            sa.select(sa.func.min(webhook_deliveries.c.next_attempt_at)).where(
                webhook_deliveries.c.state == DeliveryState.pending.value
            )
        ).scalar_one_or_none()
    if found is not None and found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found


__all__: Sequence[str] = [
    "Answer",
    "Backoff",
    "Claimed",
    "Deliverer",
    "DeliveryReport",
    "HttpSender",
    "Sender",
    "next_due",
]
