"""Webhooks: every decision, and every later change to it, told to the platform.

A webhook is a URL, a secret and the events it takes (``Event``): ``decision`` (a post
decided, or decided again differently), ``review`` (a reviewer's outcome: ``reject`` is a
reversal), ``appeal`` (an appeal's outcome) and ``order`` (a removal order registered),
optionally only for one client's posts. ``emit`` writes one delivery per webhook that
takes the event into the outbox (``webhook_deliveries``) on the caller's connection, so a
delivery exists exactly when the change it tells of was committed; ``amber.webhook_delivery``
sends them. A delivery's body is fixed when it is written: the bytes signed and sent on
every attempt, with the same ``delivery`` id, so a receiver can drop repeats.

The body is the change's JSON (a decision's is ``Decision.to_answer()`` with its
``review_state``) and the event's metadata: ``event``, ``delivery`` (the id also in
``X-Amber-Delivery``) and ``occurred_at``. Secrets are stored in the database as given:
HMAC-SHA256 needs the secret itself, so they cannot be stored hashed (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from amber.errors import ConflictError, NotFoundError, UserError
from amber.store.tables import webhook_deliveries, webhooks

__all__ = [
    "Delivery",
    "DeliveryState",
    "Event",
    "Webhook",
    "WebhookStore",
    "emit",
    "listeners",
    "parse_events",
    "sign",
]

#: The shortest secret taken: a short one lets anyone who sees a body forge signatures.
MIN_SECRET = 16
MAX_SECRET = 1000
MAX_URL = 2000
#: The keys ``emit`` adds to every body; a payload may not use them.
METADATA = ("event", "delivery", "occurred_at")
#: The largest ``limit`` of a delivery listing.
MAX_LIMIT = 100_000


class Event(StrEnum):
    """What a webhook can be told of (``X-Amber-Event``)."""

    decision = "decision"
    review = "review"
    appeal = "appeal"
    order = "order"


class DeliveryState(StrEnum):
    """Where a delivery stands: ``pending`` (to send, or to try again at its next attempt),
    ``delivered`` (a 2xx answer) or ``failed`` (given up after the most attempts; a hand
    retry makes it pending again)."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


def parse_events(text: str | Iterable[str] | None) -> tuple[Event, ...]:
    """Events from ``"decision,review"`` or a list, in ``Event``'s order; ``None`` is
    every event. Raises ``UserError`` naming an unknown one, or for none at all."""
    if text is None:
        return tuple(Event)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    chosen = set()
    for name in names:
        chosen.add(_event(name))
    if not chosen:
        raise UserError(f"no events given; name one or more of: {_known(Event)}")
    return tuple(e for e in Event if e in chosen)


def _event(name: Event | str) -> Event:
    try:
        return Event(name)
    except ValueError:
        raise UserError(f"event {name!r} is unknown; use one of: {_known(Event)}") from None


def _known(kind: Iterable[StrEnum]) -> str:
    return ", ".join(k.value for k in kind)


def check_url(url: str) -> str:
    """``url`` if deliveries can be POSTed to it: http or https, with a host. Raises
    ``UserError`` saying what is wrong with it."""
    shown = url if len(url) <= 200 else url[:200] + "…"
    if not url or url != url.strip() or any(c.isspace() for c in url):
        raise UserError(f"webhook URL {shown!r} is empty or has spaces; give http(s)://HOST/PATH")
    if len(url) > MAX_URL:
        raise UserError(f"webhook URL is {len(url)} characters long; at most {MAX_URL}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"webhook URL {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UserError(
            f"webhook URL {shown!r} must start with https:// or http:// "
            f"(not {parts.scheme + '://' if parts.scheme else 'nothing'})"
        )
    if not parts.hostname:
        raise UserError(f"webhook URL {shown!r} has no host; give http(s)://HOST/PATH")
    if port == 0:
        raise UserError(f"webhook URL {shown!r} has port 0; give a port from 1 to 65535")
    if parts.fragment:
        raise UserError(f"webhook URL {shown!r} has a #fragment, which is never sent; drop it")
    return url


def check_secret(secret: str | None) -> str:
    """``secret`` if it can sign deliveries. Raises ``UserError`` for a missing, short or
    over-long one."""
    if secret is None or not secret.strip():
        raise UserError(
            "a webhook needs a secret to sign its deliveries (--secret, or 'secret' in the "
            "request); make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if len(secret) < MIN_SECRET:
        raise UserError(
            f"the webhook secret is {len(secret)} characters long; give at least {MIN_SECRET} "
            "(python -c 'import secrets; print(secrets.token_hex(32))' makes one)"
        )
    if len(secret) > MAX_SECRET:
        raise UserError(
            f"the webhook secret is {len(secret)} characters long; at most {MAX_SECRET}"
        )
    return secret


def sign(secret: str, body: bytes) -> str:
    """The ``X-Amber-Signature`` of ``body``: ``sha256=`` and the hex HMAC-SHA256 of the
    exact bytes with ``secret`` (UTF-8)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Listener:
    """A webhook as ``emit`` needs it: which events and whose posts."""

    id: int
    events: frozenset[str]
    client: str | None


def listeners(conn: sa.Connection) -> list[Listener]:
    """Every webhook, for ``emit`` (read once for a batch of events, on its connection)."""
    rows = conn.execute(sa.select(webhooks.c.id, webhooks.c.events, webhooks.c.client))
    return [Listener(int(r.id), frozenset(r.events), r.client) for r in rows]


def emit(
    conn: sa.Connection,
    event: Event | str,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    to: Sequence[Listener] | None = None,
) -> list[str]:
    """Put ``payload`` (a JSON object) in the outbox for every webhook that takes
    ``event``, on ``conn``: call it inside the transaction that makes the change, so the
    delivery is written exactly when the change is committed. A payload about a post
    (``post_id`` and ``client``) goes only to webhooks for every client or for that
    client, and one post's deliveries to one webhook are sent in order. ``to`` is
    ``listeners(conn)`` when the caller emits many events in one transaction. Returns
    the delivery ids written (none when no webhook takes the event).

    Raises ``UserError`` for an unknown event or a payload using a metadata key
    (``event``, ``delivery``, ``occurred_at``).
    """
    kind = _event(event)
    clash = [k for k in METADATA if k in payload]
    if clash:
        raise UserError(f"a webhook payload may not set {', '.join(clash)}: emit adds them")
    client = payload.get("client")
    post_id = payload.get("post_id")
    about_post = isinstance(client, str) and isinstance(post_id, str)
    found = listeners(conn) if to is None else to
    rows: list[dict[str, Any]] = []
    for hook in found:
        if kind.value not in hook.events:
            continue
        if hook.client is not None and (not about_post or hook.client != client):
            continue
        delivery = str(uuid.uuid4())
        body = {"event": kind.value, "delivery": delivery, "occurred_at": now.isoformat()}
        body.update(payload)
        rows.append(
            {
                "delivery": delivery,
                "webhook_id": hook.id,
                "event": kind.value,
                "client": client if about_post else None,
                "post_id": post_id if about_post else None,
                "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                "state": DeliveryState.pending.value,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    if rows:
        conn.execute(webhook_deliveries.insert(), rows)
    return [r["delivery"] for r in rows]


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook (never its secret), with its deliveries: pending and failed now, and
    over its life how many were delivered and how many attempts failed."""

    id: int
    url: str
    events: tuple[Event, ...]
    client: str | None
    created_at: datetime
    created_by: str
    pending: int = 0
    failed: int = 0
    delivered: int = 0
    failures: int = 0
    #: When its oldest pending delivery was written (``None``: none pending).
    oldest_pending_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The webhook as the CLI and the API write it (never its secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "events": [e.value for e in self.events],
            "client": self.client,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "deliveries": {
                "pending": self.pending,
                "failed": self.failed,
                "delivered": self.delivered,
                "failed_attempts": self.failures,
                "oldest_pending_at": _iso(self.oldest_pending_at),
            },
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one webhook, and how sending it went."""

    delivery: str
    webhook_id: int
    url: str
    event: Event
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    body: str
    client: str | None = None
    post_id: str | None = None
    last_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The delivery as the CLI and the API write it; ``payload`` is the body sent."""
        return {
            "delivery": self.delivery,
            "webhook": self.webhook_id,
            "url": self.url,
            "event": self.event.value,
            "state": self.state.value,
            "client": self.client,
            "post_id": self.post_id,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": (
                self.next_attempt_at.isoformat() if self.state is DeliveryState.pending else None
            ),
            "last_attempt_at": _iso(self.last_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": _iso(self.delivered_at),
            "payload": json.loads(self.body),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class WebhookStore:
    """Webhooks and their deliveries on one database: add, list, remove; deliveries
    listed and retried by hand. Sending is ``amber.webhook_delivery.Deliverer``'s."""

    def __init__(
        self, db: sa.Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.clock = clock

    def add(
        self,
        url: str,
        *,
        secret: str | None,
        events: str | Iterable[str] | None = None,
        client: str | None = None,
        actor: str = "library",
    ) -> Webhook:
        """Add a webhook for ``events`` (default every event) of every client's posts, or
        of ``client``'s only. Raises ``UserError`` for a bad URL, secret, event or client
        name."""
        check_url(url)
        check_secret(secret)
        chosen = parse_events(events)
        if client is not None and (not client.strip() or len(client) > 200):
            raise UserError(f"client {client!r} is not a client name (1 to 200 characters)")
        now = self.clock()
        with self.db.begin() as conn:
            new = conn.execute(
                webhooks.insert()
                .values(
                    url=url,
                    secret=secret,
                    events=[e.value for e in chosen],
                    client=client,
                    created_at=now,
                    created_by=actor,
                )
                .returning(webhooks.c.id)
            ).scalar_one()
        return self.get(int(new))

    def all(self) -> list[Webhook]:
        """Every webhook, oldest first, with its deliveries' counts."""
        return self._read(None)

    def get(self, webhook_id: int) -> Webhook:
        """One webhook. Raises ``NotFoundError``."""
        found = self._read(webhook_id)
        if not found:
            raise NotFoundError(f"no webhook {webhook_id}; 'amber webhook list' shows them")
        return found[0]

    def _read(self, webhook_id: int | None) -> list[Webhook]:
        d = webhook_deliveries
        counts = (
            sa.select(
                d.c.webhook_id,
                sa.func.count().filter(d.c.state == DeliveryState.pending.value).label("pending"),
                sa.func.count().filter(d.c.state == DeliveryState.failed.value).label("failed"),
                sa.func.min(d.c.created_at)
                .filter(d.c.state == DeliveryState.pending.value)
                .label("oldest"),
            )
            .where(d.c.state != DeliveryState.delivered.value)
            .group_by(d.c.webhook_id)
        )
        if webhook_id is not None:
            if not 0 < webhook_id < 2**63:
                return []
            counts = counts.where(d.c.webhook_id == webhook_id)
        query = sa.select(webhooks).order_by(webhooks.c.id)
        if webhook_id is not None:
            query = query.where(webhooks.c.id == webhook_id)
        with self.db.connect() as conn:
            by_hook = {r.webhook_id: r for r in conn.execute(counts)}
            rows = conn.execute(query).all()
        found = []
        for r in rows:
            c = by_hook.get(r.id)
            oldest = None if c is None else c.oldest
            if oldest is not None and oldest.tzinfo is None:  # min() of SQLite's text
                oldest = oldest.replace(tzinfo=UTC)
            found.append(
                Webhook(
                    id=int(r.id),
                    url=r.url,
                    events=tuple(Event(e) for e in r.events),
                    client=r.client,
                    created_at=r.created_at,
                    created_by=r.created_by,
                    pending=0 if c is None else int(c.pending),
                    failed=0 if c is None else int(c.failed),
                    delivered=int(r.delivered),
                    failures=int(r.failures),
                    oldest_pending_at=oldest,
                )
            )
        return found

    def remove(self, webhook_id: int) -> Webhook:
        """Remove a webhook and its deliveries (pending ones are never sent); returns it
        as it was. Raises ``NotFoundError``."""
        gone = self.get(webhook_id)
        with self.db.begin() as conn:
            conn.execute(
                webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            removed = conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id)).rowcount
        if removed != 1:
            raise NotFoundError(f"no webhook {webhook_id}; it was removed meanwhile")
        return gone

    def deliveries(
        self,
        *,
        state: DeliveryState | str | None = None,
        webhook_id: int | None = None,
        post_id: str | None = None,
        event: Event | str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries, the newest first: with ``state``, only those pending, delivered or
        failed; with ``webhook_id``, ``post_id`` or ``event``, only those. At most
        ``limit``. Raises ``UserError`` for an unknown state or event or a ``limit`` out of
        range, ``NotFoundError`` for an unknown webhook."""
        if not 1 <= limit <= MAX_LIMIT:
            raise UserError(f"limit {limit} is out of range; give 1 to {MAX_LIMIT}")
        query = self._deliveries().order_by(webhook_deliveries.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(webhook_deliveries.c.state == _state(state).value)
        if event is not None:
            query = query.where(webhook_deliveries.c.event == _event(event).value)
        if post_id is not None:
            query = query.where(webhook_deliveries.c.post_id == post_id)
        if webhook_id is not None:
            self.get(webhook_id)
            query = query.where(webhook_deliveries.c.webhook_id == webhook_id)
        with self.db.connect() as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def delivery(self, delivery: str) -> Delivery:
        """One delivery by its id (``X-Amber-Delivery``). Raises ``NotFoundError``."""
        with self.db.connect() as conn:
            row = conn.execute(
                self._deliveries().where(webhook_deliveries.c.delivery == delivery)
            ).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery!r}; 'amber webhook deliveries' lists them")
        return _delivery(row)

    @staticmethod
    def _deliveries() -> sa.Select[Any]:
        return sa.select(webhook_deliveries, webhooks.c.url).join(
            webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id
        )

    def retry(self, delivery: str) -> Delivery:
        """Send a failed delivery again, as new: pending now, its attempts counted from
        zero, with the same id and body. Raises ``NotFoundError``, or ``ConflictError``
        for one that is not failed (pending: it is sent anyway; delivered: a repeat would
        carry the same id, and a receiver drops it)."""
        found = self.delivery(delivery)
        if found.state is not DeliveryState.failed:
            when = (
                f"it is sent at {found.next_attempt_at.isoformat()} or sooner"
                if found.state is DeliveryState.pending
                else f"it was delivered at {_iso(found.delivered_at)}"
            )
            raise ConflictError(f"delivery {delivery!r} is {found.state.value}, not failed: {when}")
        self._requeue(webhook_deliveries.c.delivery == delivery)
        return self.delivery(delivery)

    def retry_failed(self, *, webhook_id: int | None = None) -> int:
        """Send every failed delivery (of ``webhook_id``, when given) again; returns how
        many. Raises ``NotFoundError`` for an unknown webhook."""
        where = webhook_deliveries.c.state == DeliveryState.failed.value
        if webhook_id is not None:
            self.get(webhook_id)
            where = sa.and_(where, webhook_deliveries.c.webhook_id == webhook_id)
        return self._requeue(where)

    def _requeue(self, where: sa.ColumnElement[bool]) -> int:
        now = self.clock()
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    webhook_deliveries.update()
                    .where(where, webhook_deliveries.c.state == DeliveryState.failed.value)
                    .values(
                        state=DeliveryState.pending.value,
                        attempts=0,
                        next_attempt_at=now,
                        leased_by=None,
                        leased_until=None,
                    )
                ).rowcount
            )


def _state(value: DeliveryState | str) -> DeliveryState:
    try:
        return DeliveryState(value)
    except ValueError:
        raise UserError(
            f"delivery state {value!r} is unknown; use one of: {_known(DeliveryState)}"
        ) from None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        delivery=row.delivery,
        webhook_id=int(row.webhook_id),
        url=row.url,
        event=Event(row.event),
        state=DeliveryState(row.state),
        attempts=int(row.attempts),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        body=row.body,
        client=row.client,
        post_id=row.post_id,
        last_attempt_at=row.last_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )
