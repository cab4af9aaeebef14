"""The review queue: what needs a person, most urgent first, one reviewer per item.

An item is a decision whose actions include ``review`` (review and restrict verdicts).
The queue is ordered by deadline, not arrival: a poll's closing time first (soonest
first), then a threat to life, then severity (restrict before review), then age.
Reviewers take exclusive locks that expire, so two never work on the same item and an
abandoned item comes back; one reviewer holds at most ``max_locks`` at once (env
``AMBER_REVIEW_MAX_LOCKS``, default 5), so nobody can lock the whole queue. A poll's
closing time is the post's word, so it counts as a deadline only inside a plausible window
(``plausible_deadline``): a time already past is not trusted, one beyond seven days is
brought in to seven days. A reviewer's outcome (confirm, reject, escalate) is recorded
with its reason; confirming can add the item's media to a bank so every later re-upload
is caught automatically. Each outcome is told to the webhooks (event ``review``) in the
transaction that records it; ``reject`` is a reversal: the platform restores the post.

Nothing a reviewer did is overwritten: every outcome is a step of the post's history
(``amber.review.history``: reopen an outcome, revert the bank entries a confirmation
added). An escalated item leaves the queue for the escalation queue
(``amber.review.escalations``) until someone owns it; its owner decides it without a lock.
A confirmation into a bank keeps the ids of the entries it added (from the bank's audit,
where the actor is ``reviewer:<name>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from amber.decisions import event_payload
from amber.errors import ConflictError, NotFoundError, UserError
from amber.identity import DEFAULT_CLIENT
from amber.review.history import (
    BANK_ACTOR,
    OUTCOMES,
    Review,
    Step,
    insert_step,
    owner_of,
    review_of,
)
from amber.store.tables import (
    bank_audit,
    decisions,
    media_signals,
    post_media,
    review_locks,
    review_outcomes,
)
from amber.webhooks import Event, emit

if TYPE_CHECKING:
    from amber.banks import BankStore

DEFAULT_LOCK = timedelta(minutes=10)
#: How many live locks one reviewer may hold (``AMBER_REVIEW_MAX_LOCKS``).
DEFAULT_MAX_LOCKS = 5
MAX_LOCKS_ENV = "AMBER_REVIEW_MAX_LOCKS"
#: A poll closing more than this before the scan already closed: its time is not trusted
#: (clock skew between the platform and amber is allowed for).
PAST_SKEW = timedelta(minutes=5)
#: The longest a poll runs on the platforms amber knows (Instagram, X, Telegram: 7 days).
LONGEST_POLL = timedelta(days=7)


class LockLimitError(ConflictError):
    """A reviewer already holds as many locks as one may (HTTP 429)."""

    http_status = 429


def default_max_locks() -> int:
    """``AMBER_REVIEW_MAX_LOCKS`` or 5. Raises ``UserError`` for a value that is not a
    whole number >= 1."""
    text = os.environ.get(MAX_LOCKS_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_LOCKS
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"{MAX_LOCKS_ENV}={text!r} is not a whole number >= 1")
    return int(text)


def plausible_deadline(closes_at: datetime, now: datetime) -> datetime | None:
    """A poll's closing time as a review deadline, or ``None`` when it cannot be trusted.

    The time comes from the post, so a decoy could claim 1970 to go first. A time more
    than ``PAST_SKEW`` before ``now`` (the scan) is ``None``: the caller then treats the
    post as if its poll had no closing time (a threat to life still gets its hour). A
    time more than ``LONGEST_POLL`` ahead is brought in to ``now + LONGEST_POLL``.
    """
    if closes_at < now - PAST_SKEW:
        return None
    return min(closes_at, now + LONGEST_POLL)


def time_left(deadline: datetime | None, now: datetime) -> tuple[str, bool]:
    """``("43 min left", False)``, ``("overdue by 5 min", True)`` or ``("no deadline", False)``."""
    if deadline is None:
        return "no deadline", False
    seconds = (deadline - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    span = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
    if minutes >= 48 * 60:
        span = f"{minutes // (24 * 60)} days"
    return (f"{span} left", False) if seconds >= 0 else (f"overdue by {span}", True)


class ReviewOutcome(StrEnum):
    """What a reviewer decided."""

    confirm = "confirm"  # the verdict stands: remove, or keep restricted
    reject = "reject"  # a mistake: restore the post
    escalate = "escalate"  # beyond this reviewer: legal, authorities, a senior


class Confirmation(StrEnum):
    """What a confirmation does."""

    remove = "remove"
    keep_restricted = "keep_restricted"


STATE = {
    ReviewOutcome.confirm: "confirmed",
    ReviewOutcome.reject: "rejected",
    ReviewOutcome.escalate: "escalated",
}


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One item awaiting review."""

    post_id: str
    verdict: str
    deadline: datetime | None
    threat_to_life: bool
    first_scanned_at: datetime
    reasons: list[dict[str, Any]]
    actions: list[str]
    post: str
    author: str | None
    locked_by: str | None
    lock_expires_at: datetime | None
    state: str
    client: str = DEFAULT_CLIENT
    version: int = 1
    #: When a removal order for this version arrived (its hour runs from then).
    removal_ordered_at: datetime | None = None
    #: Seconds to the deadline when the item was read (negative: overdue; ``None``: none).
    seconds_left: float | None = None

    @property
    def overdue(self) -> bool:
        """Its deadline had passed when it was read."""
        return self.seconds_left is not None and self.seconds_left < 0

    def to_json(self) -> dict[str, Any]:
        """The item as the CLI and the API write it (``post`` is the post's JSON object)."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "verdict": self.verdict,
            "deadline": _iso(self.deadline),
            "seconds_left": self.seconds_left,
            "overdue": self.overdue,
            "removal_ordered_at": _iso(self.removal_ordered_at),
            "threat_to_life": self.threat_to_life,
            "first_scanned_at": self.first_scanned_at.isoformat(),
            "author": self.author,
            "reasons": self.reasons,
            "actions": self.actions,
            "post": json.loads(self.post),
            "state": self.state,
            "locked_by": self.locked_by,
            "lock_expires_at": _iso(self.lock_expires_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class Custody(Protocol):
    """Where a confirmation becomes a custody event of the post's evidence
    (``amber.evidence.acts.Acts``): staged before it is stored (``stage_review`` returns
    the vault item key, ``amber.identity.item_key``, of the client's post's version
    confirmed), finished or discarded after by that key."""

    def stage_review(self, post_id: str, review: dict[str, Any], *, client: str) -> str: ...
    def finish(self, key: str) -> None: ...
    def discard(self, key: str) -> None: ...


class ReviewQueue:
    """The queue on one database. ``add_to_bank(post_id, bank, actor)`` banks an item's
    media, ``banks`` (the same banks) tells which entries that added and deletes them
    again (``unbank``); ``custody`` keeps each confirmation in the post's evidence."""

    def __init__(
        self,
        db: sa.Engine,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lock_for: timedelta = DEFAULT_LOCK,
        max_locks: int = DEFAULT_MAX_LOCKS,
        add_to_bank: Callable[[str, str, str], object] | None = None,
        custody: Custody | None = None,
        banks: BankStore | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.lock_for = lock_for
        #: How many live locks one reviewer may hold at once.
        self.max_locks = max_locks
        self.add_to_bank = add_to_bank
        self.custody = custody
        self.banks = banks

    def _query(self) -> sa.Select[tuple[Any, ...]]:
        severity = sa.case((decisions.c.verdict == "restrict", 0), else_=1)
        return (
            sa.select(decisions, review_locks.c.reviewer, review_locks.c.expires_at)
            .outerjoin(review_locks, review_locks.c.post_id == decisions.c.post_id)
            .where(decisions.c.review_state == "pending")
            .order_by(
                decisions.c.deadline.is_(None),
                decisions.c.deadline,
                decisions.c.threat_to_life.desc(),
                severity,
                decisions.c.first_scanned_at,
                decisions.c.id,
            )
        )

    def items(self, *, limit: int = 100) -> list[QueueItem]:
        """Pending items, most urgent first."""
        with self.db.connect() as conn:
            rows = conn.execute(self._query().limit(limit)).all()
        now = self.clock()
        return [queue_item(r, now) for r in rows]

    def item(self, post_id: str) -> QueueItem:
        """One item, pending or not. Raises ``NotFoundError``, or ``ConflictError`` when
        several clients hold the post id (the queue's locks and outcomes are by post id:
        it refuses rather than act on the wrong client's post)."""
        query = (
            sa.select(decisions, review_locks.c.reviewer, review_locks.c.expires_at)
            .outerjoin(review_locks, review_locks.c.post_id == decisions.c.post_id)
            .where(decisions.c.post_id == post_id)
            .order_by(decisions.c.client)
            .limit(5)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"no decision for post {post_id!r}")
        if len(rows) > 1:
            clients = ", ".join(repr(r.client) for r in rows)
            raise ConflictError(
                f"post id {post_id!r} is held by clients {clients}; the review queue "
                "cannot tell them apart by post id"
            )
        return queue_item(rows[0], self.clock())

    def lock(self, post_id: str, reviewer: str) -> datetime:
        """Take (or renew) the exclusive lock on an item; returns when it expires.

        Raises ``ConflictError`` if another reviewer holds a live lock, ``LockLimitError``
        if ``reviewer`` already holds ``max_locks`` other live locks, ``NotFoundError`` if
        the item is not awaiting review.
        """
        if self.item(post_id).state != "pending":
            raise NotFoundError(f"post {post_id!r} is not awaiting review")
        now = self.clock()
        expires = now + self.lock_for
        with self.db.begin() as conn:
            held = conn.execute(
                sa.select(sa.func.count())
                .select_from(review_locks)
                .where(
                    review_locks.c.reviewer == reviewer,
                    review_locks.c.expires_at > now,
                    review_locks.c.post_id != post_id,
                )
            ).scalar_one()
            if held >= self.max_locks:
                raise LockLimitError(
                    f"reviewer {reviewer!r} already holds {held} locks; at most "
                    f"{self.max_locks} at once ({MAX_LOCKS_ENV}): decide or give back one first"
                )
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
                review_locks
            )
            statement = (
                insert.values(post_id=post_id, reviewer=reviewer, expires_at=expires)
                .on_conflict_do_update(
                    index_elements=["post_id"],
                    set_={
                        "reviewer": insert.excluded.reviewer,
                        "expires_at": insert.excluded.expires_at,
                    },
                    where=sa.or_(
                        review_locks.c.expires_at < now,
                        review_locks.c.reviewer == insert.excluded.reviewer,
                    ),
                )
                .returning(review_locks.c.reviewer)
            )
            taken = conn.execute(statement).first()
        if taken is None:
            holder = self.item(post_id).locked_by
            raise ConflictError(f"post {post_id!r} is being reviewed by {holder!r}")
        return expires

    def next(self, reviewer: str) -> QueueItem | None:
        """Lock and return the most urgent item nobody else holds, or ``None``.

        Raises ``LockLimitError`` when ``reviewer`` holds ``max_locks`` locks already."""
        for candidate in self.items(limit=200):
            if candidate.locked_by not in (None, reviewer):
                continue
            try:
                self.lock(candidate.post_id, reviewer)
            except LockLimitError:
                raise
            except ConflictError:
                continue  # another reviewer was faster
            return self.item(candidate.post_id)
        return None

    def unlock(self, post_id: str, reviewer: str) -> None:
        """Give an item back.

        Raises ``NotFoundError`` for an unknown post, ``ConflictError`` when ``reviewer``
        holds no live lock on it (another reviewer's lock is left alone).
        """
        now = self.clock()
        with self.db.begin() as conn:
            released = conn.execute(
                review_locks.delete().where(
                    review_locks.c.post_id == post_id,
                    review_locks.c.reviewer == reviewer,
                    review_locks.c.expires_at > now,
                )
            ).rowcount
        if released == 1:
            return
        holder = self.item(post_id).locked_by
        if holder is None:
            raise ConflictError(
                f"{reviewer!r} holds no lock on post {post_id!r}; nothing to give back"
            )
        raise ConflictError(
            f"post {post_id!r} is held by {holder!r}, not {reviewer!r}; only its holder "
            "gives it back"
        )

    def decide(
        self,
        post_id: str,
        reviewer: str,
        outcome: ReviewOutcome | str,
        *,
        reason: str,
        action: Confirmation | str | None = None,
        bank: str | None = None,
    ) -> Review:
        """Record a reviewer's outcome on an item awaiting review, whose lock the reviewer
        holds, or on an escalated item the reviewer owns (``amber.review.escalations``).

        ``confirm`` needs an ``action`` (remove or keep_restricted) and may name a ``bank``
        to add the item's media to (the entries added are kept with the outcome). A
        confirmation is a custody event of the post's evidence (with ``custody``): staged
        before it is recorded, logged after.

        Raises ``UserError`` for bad values, ``ConflictError`` without the lock (or the
        ownership of an escalated item), for an item already reviewed (reopen it first),
        or when a confirmation has no evidence to join, ``EvidenceWriteError`` (503) when
        the vault cannot be written (nothing recorded), ``ActPendingError`` (503) when the
        outcome is recorded and its custody event is pending.
        """
        chosen: ReviewOutcome = _enum(ReviewOutcome, outcome, "outcome")
        how: Confirmation | None = None if action is None else _enum(Confirmation, action, "action")
        if not reason.strip():
            raise UserError("a review outcome needs a reason")
        if chosen is ReviewOutcome.confirm and how is None:
            raise UserError("confirm needs an action: remove or keep_restricted")
        if chosen is not ReviewOutcome.confirm and (how is not None or bank is not None):
            raise UserError("only a confirmation takes an action or a bank")
        item = self.item(post_id)
        now = self.clock()
        if item.state == "escalated":
            owner = self.owner(post_id, client=item.client)
            if owner != reviewer:
                raise ConflictError(
                    f"post {post_id!r} is escalated and "
                    + ("nobody owns it" if owner is None else f"owned by {owner!r}")
                    + f"; only its owner decides it ({reviewer!r} may own it from the "
                    "escalation queue once nobody does)"
                )
        elif item.state != "pending":
            raise ConflictError(
                f"post {post_id!r} is not awaiting review: it was {item.state}; reopen it "
                "with a reason to change the outcome"
            )
        elif item.locked_by != reviewer or (item.lock_expires_at or now) <= now:
            raise ConflictError(
                f"lock post {post_id!r} before deciding it (held by {item.locked_by!r})"
            )
        custody = self.custody if chosen is ReviewOutcome.confirm else None
        key: str | None = None
        if custody is not None:
            key = custody.stage_review(
                post_id,
                {
                    "reviewer": reviewer,
                    "outcome": chosen.value,
                    "action": None if how is None else how.value,
                    "reason": reason,
                    "bank": bank,
                    "decided_at": now.isoformat(),
                },
                client=item.client,
            )
        try:
            done = self._record(item, reviewer, chosen, how, reason=reason, bank=bank, now=now)
        except BaseException:
            if custody is not None and key is not None:
                custody.discard(key)
            raise
        if custody is not None and key is not None:
            custody.finish(key)
        return done

    def _record(
        self,
        item: QueueItem,
        reviewer: str,
        chosen: ReviewOutcome,
        how: Confirmation | None,
        *,
        reason: str,
        bank: str | None,
        now: datetime,
    ) -> Review:
        """Add to the bank if asked (noting the entries added), then store the outcome,
        give the lock back and tell the webhooks (event ``review``: the post as it stands
        and the outcome), in one transaction."""
        post_id, client = item.post_id, item.client
        entries: tuple[int, ...] = ()
        if bank is not None:
            entries = self._bank(post_id, bank, reviewer)
        with self.db.begin() as conn:
            # The decision's row first: it is locked (SQLite: the database's write lock)
            # until the end, so what is checked below cannot change before the commit.
            changed = conn.execute(
                decisions.update()
                .where(
                    decisions.c.post_id == post_id,
                    decisions.c.client == client,
                    decisions.c.review_state == item.state,
                )
                .values(review_state=STATE[chosen])
                .returning(*decisions.c)
            ).first()
            if changed is None:
                raise ConflictError(
                    f"post {post_id!r} was decided meanwhile (an appeal, another reviewer); "
                    "reload it"
                )
            if item.state == "escalated":
                if owner_of(conn, post_id, client) != reviewer:
                    raise ConflictError(f"post {post_id!r} changed owner meanwhile; reload it")
            else:
                # Give the lock back in the same transaction: if it expired and another
                # reviewer took the item meanwhile, nothing is released or recorded.
                released = conn.execute(
                    review_locks.delete().where(
                        review_locks.c.post_id == post_id,
                        review_locks.c.reviewer == reviewer,
                        review_locks.c.expires_at > now,
                    )
                ).rowcount
                if released != 1:
                    raise ConflictError(f"the lock on post {post_id!r} ended; lock it again")
            review = insert_step(
                conn,
                Review(
                    post_id,
                    reviewer,
                    Step(chosen.value),
                    how,
                    reason,
                    bank,
                    now,
                    client=client,
                    entries=entries,
                ),
            )
            emit(
                conn,
                Event.review,
                {**event_payload(changed._mapping), "review": review.to_json()},
                now=now,
            )
        return review

    def _bank(self, post_id: str, bank: str, reviewer: str) -> tuple[int, ...]:
        """Add the item's media to ``bank`` in the reviewer's name; returns the ids of the
        entries added (from the bank's audit: its ``add`` events by this reviewer, for this
        post's media, after the last event before the add)."""
        if self.add_to_bank is None:  # pragma: no cover - the engine always wires it
            raise UserError("this queue cannot add to banks")
        actor = BANK_ACTOR.format(reviewer=reviewer)
        with self.db.connect() as conn:
            mark = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(bank_audit.c.id), 0)).where(
                    bank_audit.c.bank == bank
                )
            ).scalar_one()
        self.add_to_bank(post_id, bank, actor)
        if self.banks is None:
            return ()
        prefix = f"review:{post_id} media["
        added: list[int] = []
        after = int(mark)
        while True:
            events = self.banks.audit(bank, after=after, limit=1000)
            for event in events:
                source = str(event.detail.get("source", ""))
                if (
                    event.actor == actor
                    and event.action == "add"
                    and event.entry is not None
                    and source.startswith(prefix)
                ):
                    added.append(event.entry)
            if len(events) < 1000:
                return tuple(added)
            after = events[-1].id

    def outcome(self, post_id: str, *, client: str | None = None) -> Review | None:
        """The latest reviewer outcome (confirm, reject or escalate) for a post (of
        ``client``, when given), if any."""
        query = (
            sa.select(review_outcomes)
            .where(
                review_outcomes.c.post_id == post_id,
                review_outcomes.c.outcome.in_(OUTCOMES),
            )
            .order_by(review_outcomes.c.id.desc())
            .limit(1)
        )
        if client is not None:
            query = query.where(review_outcomes.c.client == client)
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else review_of(row)

    def owner(self, post_id: str, *, client: str) -> str | None:
        """Who owns the post's escalation: the reviewer of an ``own`` step after its latest
        ``escalate``, or ``None``."""
        with self.db.connect() as conn:
            return owner_of(conn, post_id, client)

    def media_hashes(self, post_id: str) -> list[dict[str, Any]]:
        """The stored hashes of an item's media, in order: each ``post_media`` row with
        its own value of each signal type under the type's name (``"pdq"``) and any
        quality under ``"<type>_quality"``."""
        query = (
            sa.select(post_media)
            .join(decisions, decisions.c.id == post_media.c.decision_id)
            .where(decisions.c.post_id == post_id)
            .order_by(post_media.c.position)
        )
        values = (
            sa.select(media_signals)
            .join(decisions, decisions.c.id == media_signals.c.decision)
            .where(decisions.c.post_id == post_id, media_signals.c.variant == "original")
            .order_by(media_signals.c.signal_type, media_signals.c.value)
        )
        with self.db.connect() as conn:
            media = {r.position: dict(r._mapping) for r in conn.execute(query)}
            for v in conn.execute(values):
                item = media.get(v.position)
                if item is None or v.signal_type in item:
                    continue
                item[v.signal_type] = v.value
                if v.quality is not None:
                    item[f"{v.signal_type}_quality"] = v.quality
        return list(media.values())


def _enum(kind: type[Any], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise UserError(f"{what} {value!r} is unknown; use one of: {allowed}") from None


def queue_item(row: sa.Row[tuple[Any, ...]], now: datetime) -> QueueItem:
    """A ``decisions`` row joined with its lock (``reviewer``, ``expires_at``) as an item;
    a lock that ended by ``now`` is none."""
    live = row.expires_at is not None and row.expires_at > now
    return QueueItem(
        post_id=row.post_id,
        verdict=row.verdict,
        deadline=row.deadline,
        threat_to_life=bool(row.threat_to_life),
        first_scanned_at=row.first_scanned_at,
        reasons=list(row.reasons),
        actions=list(row.actions),
        post=row.post,
        author=row.author,
        locked_by=row.reviewer if live else None,
        lock_expires_at=row.expires_at if live else None,
        state=row.review_state,
        client=row.client,
        version=row.version,
        removal_ordered_at=row.removal_ordered_at,
        seconds_left=None if row.deadline is None else (row.deadline - now).total_seconds(),
    )
