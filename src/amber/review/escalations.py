"""The escalation queue: items a reviewer escalated (legal, the authorities, a senior),
visible until someone owns them, and after that with their owner, until decided.

An ``escalate`` outcome takes an item out of the review queue. Here it stays in sight:
unowned ones first (most urgent first, as the review queue orders), then owned ones. A
reviewer takes one on with ``own`` (a step of the post's history; a second reviewer is
refused, naming the owner), and the owner then decides it with ``ReviewQueue.decide``,
without a lock: confirm, reject, or escalate it again (which leaves it unowned).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from amber.errors import ConflictError, UserError
from amber.review.history import Review, Step, insert_step, review_of
from amber.review.queue import QueueItem, ReviewQueue, queue_item
from amber.store.tables import decisions, review_locks, review_outcomes

#: The most escalated items one listing holds.
MAX_ESCALATIONS = 10_000


@dataclass(frozen=True, slots=True)
class Escalation:
    """An escalated item: the item, the escalation (who, when, why) and who owns it."""

    item: QueueItem
    escalated: Review | None
    owner: Review | None

    def to_json(self) -> dict[str, Any]:
        """The item as the review queue writes it, with ``escalation``: by, at, reason,
        owner and owned_at (``None`` until someone owns it)."""
        return {
            **self.item.to_json(),
            "escalation": {
                "by": None if self.escalated is None else self.escalated.reviewer,
                "at": None if self.escalated is None else self.escalated.decided_at.isoformat(),
                "reason": None if self.escalated is None else self.escalated.reason,
                "owner": None if self.owner is None else self.owner.reviewer,
                "owned_at": None if self.owner is None else self.owner.decided_at.isoformat(),
            },
        }


class Escalations:
    """The escalation queue on the review queue's database and clock."""

    def __init__(self, queue: ReviewQueue) -> None:
        self.queue = queue

    def items(self, *, owned: bool | None = None, limit: int = 1000) -> list[Escalation]:
        """Escalated items: unowned first, then owned; each most urgent first (deadline,
        threat to life, severity, when escalated). ``owned`` keeps only the owned (True)
        or the unowned (False). Raises ``UserError`` for a ``limit`` out of range."""
        if not 1 <= limit <= MAX_ESCALATIONS:
            raise UserError(f"limit {limit} is out of range; give 1 to {MAX_ESCALATIONS}")
        query = (
            sa.select(decisions, review_locks.c.reviewer, review_locks.c.expires_at)
            .outerjoin(review_locks, review_locks.c.post_id == decisions.c.post_id)
            .where(decisions.c.review_state == "escalated")
        )
        found: list[Escalation] = []
        with self.queue.db.connect() as conn:
            rows = conn.execute(query).all()
            now = self.queue.clock()
            for row in rows:
                escalated, owner = self._escalation(conn, row.post_id, row.client)
                found.append(Escalation(queue_item(row, now), escalated, owner))
        if owned is not None:
            found = [e for e in found if (e.owner is not None) is owned]
        far = datetime.max.replace(tzinfo=now.tzinfo)
        found.sort(
            key=lambda e: (
                e.owner is not None,
                e.item.deadline is None,
                e.item.deadline or far,
                not e.item.threat_to_life,
                e.item.verdict != "restrict",
                e.escalated.decided_at if e.escalated else far,
                e.item.post_id,
            )
        )
        return found[:limit]

    def item(self, post_id: str) -> Escalation:
        """One escalated item. Raises ``NotFoundError``, ``ConflictError`` for a post id
        several clients hold, or an item that is not escalated."""
        item = self.queue.item(post_id)
        if item.state != "escalated":
            raise ConflictError(f"post {post_id!r} is not escalated (its review is {item.state})")
        with self.queue.db.connect() as conn:
            escalated, owner = self._escalation(conn, post_id, item.client)
        return Escalation(item, escalated, owner)

    @staticmethod
    def _escalation(
        conn: sa.Connection, post_id: str, client: str
    ) -> tuple[Review | None, Review | None]:
        """The latest ``escalate`` step of the post and the ``own`` step after it, if any."""
        rows = conn.execute(
            sa.select(review_outcomes)
            .where(
                review_outcomes.c.post_id == post_id,
                review_outcomes.c.client == client,
                review_outcomes.c.outcome.in_([Step.escalate.value, Step.own.value]),
            )
            .order_by(review_outcomes.c.id.desc())
            .limit(2)
        ).all()
        steps = [review_of(r) for r in rows]
        if steps and steps[0].outcome is Step.own:
            escalated = steps[1] if len(steps) > 1 and steps[1].outcome is Step.escalate else None
            return escalated, steps[0]
        return (steps[0] if steps else None), None

    def own(self, post_id: str, reviewer: str, *, reason: str = "") -> Review:
        """Take an escalated item on: from now on only ``reviewer`` decides it (no lock
        needed), and the escalation queue shows who owns it. Owning one you own already
        changes nothing and returns that step.

        Raises ``NotFoundError``, ``ConflictError`` for an item that is not escalated or
        that another reviewer owns (naming them).
        """
        item = self.queue.item(post_id)
        now = self.queue.clock()
        with self.queue.db.begin() as conn:
            # Lock the decision's row (SQLite: the write lock) while the owner is read.
            held = conn.execute(
                decisions.update()
                .where(
                    decisions.c.post_id == post_id,
                    decisions.c.client == item.client,
                    decisions.c.review_state == "escalated",
                )
                .values(review_state="escalated")
            ).rowcount
            if held != 1:
                raise ConflictError(
                    f"post {post_id!r} is not escalated (its review is "
                    f"{self.queue.item(post_id).state}); nothing to own"
                )
            _, owner = self._escalation(conn, post_id, item.client)
            if owner is not None:
                if owner.reviewer == reviewer:
                    return owner
                raise ConflictError(
                    f"post {post_id!r} is owned by {owner.reviewer!r} since "
                    f"{owner.decided_at.isoformat()}; only they decide it"
                )
            return insert_step(
                conn,
                Review(
                    post_id,
                    reviewer,
                    Step.own,
                    None,
                    reason.strip() or "owned from the escalation queue",
                    None,
                    now,
                    client=item.client,
                ),
            )
