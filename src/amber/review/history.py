"""A post's review history: every step a reviewer took, kept, never overwritten.

Each step is a row of ``review_outcomes``: an outcome (``confirm``, ``reject``,
``escalate``), a ``reopen`` (a confirmed or rejected item back in the queue, with a
reason; the next outcome is a new step), an ``own`` (a reviewer took an escalated item on,
``amber.review.escalations``) or an ``unbank`` (bank entries a confirmation added, deleted
again). A confirmation that banked the item's media keeps the ids of the entries it added,
so a wrong "add to bank" is reverted entry by entry through the bank's own control
(``BankStore.delete_entry``: each deletion in the bank's audit, naming the reviewer).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.decisions import event_payload
from amber.errors import ConflictError, NotFoundError, UserError
from amber.identity import DEFAULT_CLIENT
from amber.store.tables import appeals, decisions, review_outcomes
from amber.webhooks import Event, emit

if TYPE_CHECKING:
    from amber.banks import BankStore
    from amber.review.queue import Confirmation, ReviewQueue

#: Review states ``reopen`` takes back to the queue.
REOPENABLE = ("confirmed", "rejected")
#: Who changes a bank from the review queue, in the bank's audit.
BANK_ACTOR = "reviewer:{reviewer}"


class Step(StrEnum):
    """A step of a post's review history: an outcome, or what a reviewer did after one."""

    confirm = "confirm"
    reject = "reject"
    escalate = "escalate"
    reopen = "reopen"  # a confirmed or rejected item back in the queue
    own = "own"  # a reviewer took an escalated item on
    unbank = "unbank"  # bank entries a confirmation added, deleted


#: The steps that are outcomes (``ReviewQueue.decide``).
OUTCOMES = (Step.confirm.value, Step.reject.value, Step.escalate.value)


@dataclass(frozen=True, slots=True)
class Review:
    """A recorded step of a post's review: an outcome (confirm, reject, escalate), or a
    reopen, an escalation owned, bank entries reverted (``Step``)."""

    post_id: str
    reviewer: str
    outcome: Step
    action: Confirmation | None
    reason: str
    bank: str | None
    decided_at: datetime
    #: The step's id in the history (0 before it is stored).
    id: int = 0
    client: str = DEFAULT_CLIENT
    #: Bank entries the step added (a confirmation into ``bank``) or deleted (``unbank``).
    entries: tuple[int, ...] = ()
    #: The step this one is about: the outcome reopened, the confirmation unbanked.
    refers_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The step as the CLI and the API write it."""
        return {
            "id": self.id,
            "post_id": self.post_id,
            "client": self.client,
            "outcome": self.outcome.value,
            "action": None if self.action is None else self.action.value,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "bank": self.bank,
            "entries": list(self.entries),
            "refers_to": self.refers_to,
            "decided_at": self.decided_at.isoformat(),
        }


def review_of(row: Any) -> Review:
    """A ``review_outcomes`` row as a ``Review``."""
    from amber.review.queue import Confirmation

    return Review(
        row.post_id,
        row.reviewer,
        Step(row.outcome),
        None if row.action is None else Confirmation(row.action),
        row.reason,
        row.bank,
        row.decided_at,
        id=int(row.id),
        client=row.client,
        entries=tuple(int(e) for e in row.entries or ()),
        refers_to=None if row.refers_to is None else int(row.refers_to),
    )


def insert_step(conn: sa.Connection, step: Review) -> Review:
    """Store a step of a post's history on ``conn``; returns it with its id."""
    new = conn.execute(
        review_outcomes.insert()
        .values(
            post_id=step.post_id,
            client=step.client,
            reviewer=step.reviewer,
            outcome=step.outcome.value,
            action=None if step.action is None else step.action.value,
            reason=step.reason,
            bank=step.bank,
            decided_at=step.decided_at,
            entries=list(step.entries) if step.entries else None,
            refers_to=step.refers_to,
        )
        .returning(review_outcomes.c.id)
    ).scalar_one()
    return replace(step, id=int(new))


def owner_of(conn: sa.Connection, post_id: str, client: str) -> str | None:
    """Who owns the post's escalation: the reviewer of an ``own`` step after its latest
    ``escalate``, or ``None``."""
    latest = conn.execute(
        sa.select(review_outcomes.c.outcome, review_outcomes.c.reviewer)
        .where(
            review_outcomes.c.post_id == post_id,
            review_outcomes.c.client == client,
            review_outcomes.c.outcome.in_([Step.escalate.value, Step.own.value]),
        )
        .order_by(review_outcomes.c.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.outcome != Step.own.value:
        return None
    return str(latest.reviewer)


def steps_of(conn: sa.Connection, post_id: str, client: str) -> list[Review]:
    """Every step of ``client``'s post, oldest first."""
    rows = conn.execute(
        sa.select(review_outcomes)
        .where(review_outcomes.c.post_id == post_id, review_outcomes.c.client == client)
        .order_by(review_outcomes.c.id)
    ).all()
    return [review_of(r) for r in rows]


def banked(steps: Sequence[Review]) -> dict[int, str]:
    """The bank entries ``steps`` (one post's history) added and no ``unbank`` reverted,
    by id, each with its bank."""
    added: dict[int, str] = {}
    for step in steps:
        if step.outcome is Step.confirm and step.bank is not None:
            added.update((entry, step.bank) for entry in step.entries)
        elif step.outcome is Step.unbank:
            for entry in step.entries:
                added.pop(entry, None)
    return added


class ReviewHistory:
    """Reading a post's review history, reopening an outcome, reverting bank entries; on
    the queue's database, clock and banks (the review queue works by post id, and refuses
    one several clients hold, as ``ReviewQueue.item`` does)."""

    def __init__(self, queue: ReviewQueue, banks: BankStore) -> None:
        self.queue = queue
        self.banks = banks

    def steps(self, post_id: str) -> list[Review]:
        """Every step of the post's review, oldest first: each outcome, reopen, ownership
        taken and bank entries reverted. Raises as ``ReviewQueue.item`` does."""
        item = self.queue.item(post_id)
        with self.queue.db.connect() as conn:
            return steps_of(conn, post_id, item.client)

    def reopen(self, post_id: str, reviewer: str, *, reason: str) -> Review:
        """Take a confirmed or rejected item back to the queue to change its outcome; the
        outcome stays in the history, and the next one is a new step. The post stays as
        the outcome left it until then (its statement of reasons too). The webhooks are
        told (event ``review``, state ``pending``).

        Raises ``UserError`` without a reason, ``NotFoundError``, ``ConflictError`` for an
        item in another state, or one with an open appeal (decide the appeal instead).
        """
        if not reason.strip():
            raise UserError("reopening a review needs a reason")
        item = self.queue.item(post_id)
        if item.state not in REOPENABLE:
            why = {
                "pending": "it is awaiting review already",
                "escalated": "it is escalated: own it from the escalation queue and decide it",
                "reversed": "an appeal reversed it, and an appeal's outcome is final here "
                "(the user may still turn to out-of-court dispute settlement, DSA Art. 21)",
                "none": "no reviewer has decided it",
            }.get(item.state, f"its review is {item.state}")
            raise ConflictError(f"post {post_id!r} cannot be reopened: {why}")
        now = self.queue.clock()
        with self.queue.db.begin() as conn:
            appealed = conn.execute(
                sa.select(appeals.c.id).where(
                    appeals.c.client == item.client,
                    appeals.c.post_id == post_id,
                    appeals.c.status == "open",
                )
            ).first()
            if appealed is not None:
                raise ConflictError(
                    f"post {post_id!r} has an open appeal ({appealed.id}); decide the appeal "
                    f"instead (amber appeal decide {appealed.id})"
                )
            last = conn.execute(
                sa.select(review_outcomes.c.id)
                .where(
                    review_outcomes.c.post_id == post_id,
                    review_outcomes.c.client == item.client,
                    review_outcomes.c.outcome.in_(OUTCOMES),
                )
                .order_by(review_outcomes.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            changed = conn.execute(
                decisions.update()
                .where(
                    decisions.c.post_id == post_id,
                    decisions.c.client == item.client,
                    decisions.c.review_state == item.state,
                )
                .values(review_state="pending")
                .returning(*decisions.c)
            ).first()
            if changed is None:
                raise ConflictError(f"post {post_id!r} changed meanwhile; reload it")
            step = insert_step(
                conn,
                Review(
                    post_id,
                    reviewer,
                    Step.reopen,
                    None,
                    reason,
                    None,
                    now,
                    client=item.client,
                    refers_to=None if last is None else int(last),
                ),
            )
            emit(
                conn,
                Event.review,
                {**event_payload(changed._mapping), "review": step.to_json()},
                now=now,
            )
        return step

    def banked(self, post_id: str) -> dict[int, str]:
        """The bank entries reviews of the post added and no ``unbank`` reverted, by id,
        each with its bank (an entry deleted in the bank some other way is still listed
        until ``unbank`` records it)."""
        return banked(self.steps(post_id))

    def unbank(
        self,
        post_id: str,
        reviewer: str,
        *,
        reason: str,
        entries: Sequence[int] | None = None,
    ) -> list[Review]:
        """Revert a wrong "add to bank": delete the bank entries reviews of the post added
        (``entries``: only those; default every one left), one by one through the bank's
        own control (``BankStore.delete_entry``: each in the bank's audit, the actor
        ``reviewer:<name>``); an entry already gone from the bank is not deleted again.
        Records one ``unbank`` step per bank with the entries reverted. The post's outcome is not
        changed (reopen it for that).

        Raises ``UserError`` without a reason or for an entry no review of the post added,
        ``ConflictError`` when none is left to revert.
        """
        if not reason.strip():
            raise UserError("reverting bank entries needs a reason")
        history = self.steps(post_id)
        left = banked(history)
        if not left:
            raise ConflictError(
                f"no bank entries added by a review of post {post_id!r} are left to revert"
            )
        chosen = sorted(left) if entries is None else list(dict.fromkeys(entries))
        strays = [e for e in chosen if e not in left]
        if strays:
            raise UserError(
                f"bank entry {', '.join(map(str, strays))} was not added by a review of post "
                f"{post_id!r}, or was reverted already; its reviews added "
                f"{', '.join(map(str, sorted(left)))}"
            )
        confirmed = {
            s.bank: s.id for s in history if s.outcome is Step.confirm and s.bank is not None
        }
        actor = BANK_ACTOR.format(reviewer=reviewer)
        by_bank: dict[str, list[int]] = {}
        for entry in chosen:
            with suppress(NotFoundError):  # deleted in the bank meanwhile: reverted already
                self.banks.delete_entry(left[entry], entry, actor=actor)
            by_bank.setdefault(left[entry], []).append(entry)
        now = self.queue.clock()
        client = history[0].client
        with self.queue.db.begin() as conn:
            return [
                insert_step(
                    conn,
                    Review(
                        post_id,
                        reviewer,
                        Step.unbank,
                        None,
                        reason,
                        bank,
                        now,
                        client=client,
                        entries=tuple(gone),
                        refers_to=confirmed.get(bank),
                    ),
                )
                for bank, gone in sorted(by_bank.items())
            ]
