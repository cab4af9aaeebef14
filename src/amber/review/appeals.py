"""Appeals (EU DSA Art. 20): the affected user's complaint against a restriction of their
post, sent by the platform on their behalf, and a reviewer's answer.

Rules (each refusal is a ``ConflictError`` that names its rule):

- Only a restriction can be appealed: the post's newest version has a statement of reasons
  in force (``amber.statements``: amber's ``restrict`` or ``remove``, a reviewer's
  confirmation). Its PUID and date are kept with the appeal.
- Appeals are taken for six months after that decision (Art. 20(1): "for a period of at
  least six months"; ``window_months``).
- One open appeal per post (a partial unique index keeps it so under races).
- A reviewer who recorded an outcome on the post (confirm, reject, escalate) does not
  decide its appeal: another reviewer does.

Each appeal has a target date, ``due_at``: filed plus ``AMBER_APPEAL_DAYS`` days (default
14, the two weeks Regulation (EU) 2021/784 Art. 10(2) gives for a complaint about
terrorist content; the DSA asks for "timely" handling and names no number).

An appeal is ``open``, then ``upheld`` (the restriction stands) or ``reversed``. A reversal
restores the post: the appeal records the action ``restore``, the decision's review state
becomes ``reversed`` (it leaves the review queue, and a rescan keeps it), the statement in
force gets its end date (``amber.statements`` reads reversals from here), and the
webhooks are told (event ``appeal``: the decision as it now stands and the appeal with its
outcome), in one transaction. Filing and deciding are custody events of the evidence of
the version appealed (``appealed``, ``appeal_decided``), staged before the database
changes and logged after, as reviewers' confirmations are.
"""

from __future__ import annotations

import calendar
import hashlib
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa

from amber.decisions import event_payload
from amber.errors import ConflictError, NotFoundError, UserError
from amber.evidence.vault import ACTOR
from amber.review.history import OUTCOMES
from amber.statements import Statement, Statements, Status
from amber.store.tables import appeals, decisions, review_locks, review_outcomes
from amber.webhooks import Event, emit

#: Days from filing to an appeal's target date (``AMBER_APPEAL_DAYS``).
DEFAULT_DUE_DAYS = 14
DUE_DAYS_ENV = "AMBER_APPEAL_DAYS"
#: How long after a decision it can be appealed (DSA Art. 20(1): at least six months).
WINDOW_MONTHS = 6
#: The longest appeal text taken, in characters.
MAX_TEXT = 10_000
#: The action a reversal records: the platform shows the post again.
RESTORE = "restore"
#: The largest ``limit`` of a listing.
MAX_LIMIT = 10_000


class AppealStatus(StrEnum):
    """Where an appeal stands."""

    open = "open"
    upheld = "upheld"  # the restriction stands
    reversed = "reversed"  # the restriction was lifted: the post is restored


class AppealOutcome(StrEnum):
    """What a reviewer decides on an appeal."""

    uphold = "uphold"
    reverse = "reverse"


STATUS = {AppealOutcome.uphold: AppealStatus.upheld, AppealOutcome.reverse: AppealStatus.reversed}


def default_due_days() -> int:
    """``AMBER_APPEAL_DAYS`` or 14. Raises ``UserError`` for a value that is not a whole
    number of days from 1 to 365."""
    text = os.environ.get(DUE_DAYS_ENV)
    if text is None or not text.strip():
        return DEFAULT_DUE_DAYS
    if not text.strip().isdigit() or not 1 <= int(text) <= 365:
        raise UserError(f"{DUE_DAYS_ENV}={text!r} is not a whole number of days from 1 to 365")
    return int(text)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months; a day the month lacks becomes its last day
    (31 August plus six months is 28 or 29 February)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class Appeal:
    """An appeal and, once decided, its outcome."""

    id: int
    post_id: str
    client: str
    version: int
    #: The PUID of the statement of reasons appealed, and when that decision was taken.
    statement: str
    decision_at: datetime
    text: str
    filed_by: str
    filed_at: datetime
    due_at: datetime
    status: AppealStatus
    reviewer: str | None = None
    reason: str | None = None
    #: ``restore`` when the reversal restored the post; ``None`` otherwise.
    action: str | None = None
    decided_at: datetime | None = None

    @property
    def outcome(self) -> AppealOutcome | None:
        """``uphold`` or ``reverse`` once decided."""
        if self.status is AppealStatus.open:
            return None
        return AppealOutcome.uphold if self.status is AppealStatus.upheld else AppealOutcome.reverse

    def to_json(self) -> dict[str, Any]:
        """The appeal as the CLI, the API and the webhooks write it."""
        return {
            "id": self.id,
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "statement": self.statement,
            "decision_at": self.decision_at.isoformat(),
            "appealable_until": add_months(self.decision_at, WINDOW_MONTHS).isoformat(),
            "text": self.text,
            "filed_by": self.filed_by,
            "filed_at": self.filed_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "status": self.status.value,
            "outcome": None if self.outcome is None else self.outcome.value,
            "action": self.action,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
        }


class Custody(Protocol):
    """Where an appeal and its outcome become custody events of the evidence of the
    version appealed (``amber.evidence.acts.Acts``)."""

    def stage_event(
        self, post_id: str, event: Mapping[str, Any], *, client: str, version: int, source: str
    ) -> str | None: ...
    def finish(self, key: str, *, stored: str = ...) -> None: ...
    def discard(self, key: str) -> None: ...


class Appeals:
    """The appeals of the posts in one database."""

    def __init__(
        self,
        db: sa.Engine,
        *,
        statements: Statements,
        custody: Custody | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        due_days: int = DEFAULT_DUE_DAYS,
        window_months: int = WINDOW_MONTHS,
    ) -> None:
        self.db = db
        self.statements = statements
        self.custody = custody
        self.clock = clock
        #: Days from filing to an appeal's target date.
        self.due_days = due_days
        #: Months after a decision that it can be appealed.
        self.window_months = window_months

    # -- filing ------------------------------------------------------------------------

    def file(self, post_id: str, text: str, *, filed_by: str, client: str | None = None) -> Appeal:
        """File the user's appeal against the restriction of ``client``'s post (without
        ``client``: of the only client holding ``post_id``).

        Raises ``UserError`` for an empty or over-long text, ``NotFoundError`` for a post
        amber never decided, ``ConflictError`` for a post that is not restricted, a
        decision more than six months old, a post with an open appeal, or a post id
        several clients hold (name the client), ``EvidenceWriteError`` (503) when its
        custody event cannot be staged (nothing filed).
        """
        text = text.strip() if isinstance(text, str) else ""
        if not text:
            raise UserError(
                "an appeal needs the user's text: why they think the decision was wrong"
            )
        if len(text) > MAX_TEXT:
            raise UserError(f"the appeal's text is {len(text)} characters long; at most {MAX_TEXT}")
        appealed = self._appealable(post_id, client)
        now = self.clock()
        until = add_months(appealed.decided_at, self.window_months)
        if now > until:
            raise ConflictError(
                f"post {post_id!r} can no longer be appealed: its decision of "
                f"{appealed.decided_at.date().isoformat()} was open to appeal for "
                f"{self.window_months} months, until {until.date().isoformat()} (DSA Art. 20(1))"
            )
        self._no_open(post_id, appealed.client)
        due = now + timedelta(days=self.due_days)
        key = self._stage(
            appealed.post_id,
            appealed.client,
            appealed.version,
            {
                "event": "appealed",
                "actor": f"{filed_by} via {ACTOR}",
                "statement": appealed.puid,
                "text_sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                "filed_at": now.isoformat(),
                "due_at": due.isoformat(),
            },
            source=f"appeal filed by {filed_by!r}",
        )
        try:
            with self.db.begin() as conn:
                new = conn.execute(
                    appeals.insert()
                    .values(
                        client=appealed.client,
                        post_id=appealed.post_id,
                        version=appealed.version,
                        statement=appealed.puid,
                        decision_at=appealed.decided_at,
                        text=text,
                        filed_by=filed_by,
                        filed_at=now,
                        due_at=due,
                        status=AppealStatus.open.value,
                    )
                    .returning(appeals.c.id)
                ).scalar_one()
        except sa.exc.IntegrityError:
            self._discard(key)
            self._no_open(post_id, appealed.client)  # another one, filed at the same time
            raise
        except BaseException:
            self._discard(key)
            raise
        self._finish(key, f"appeal {new} is filed")
        return self.get(int(new))

    def _appealable(self, post_id: str, client: str | None) -> Statement:
        """The statement in force of the post's newest version. Raises ``NotFoundError``,
        or ``ConflictError`` naming why the post is not restricted."""
        with self.db.connect() as conn:
            query = sa.select(decisions.c.client, decisions.c.version, decisions.c.verdict).where(
                decisions.c.post_id == post_id
            )
            if client is not None:
                query = query.where(decisions.c.client == client)
            rows = conn.execute(query.order_by(decisions.c.client).limit(6)).all()
        if not rows:
            raise NotFoundError(f"no decision for post {post_id!r}; nothing to appeal")
        if len(rows) > 1:
            held = ", ".join(repr(r.client) for r in rows[:5])
            raise ConflictError(
                f"post id {post_id!r} is held by clients {held}; say which (client=NAME)"
            )
        row = rows[0]
        try:
            found = self.statements.for_post(post_id, client=row.client)
        except NotFoundError:
            found = []
        mine = [s for s in found if s.version == row.version]
        current = next((s for s in mine if s.status is Status.in_force), None)
        if current is not None:
            return current
        rule = "only a restriction can be appealed (DSA Art. 20: a post removed or hidden)"
        if mine and mine[-1].status is Status.reversed and mine[-1].ended_at is not None:
            why = f"its restriction was lifted on {mine[-1].ended_at.date().isoformat()}"
        elif found:
            why = f"its newest version ({row.version}) is not restricted"
        else:
            why = f"amber did not restrict it (verdict {row.verdict}) and no reviewer hid it"
        raise ConflictError(f"post {post_id!r} cannot be appealed: {why}; {rule}")

    def _no_open(self, post_id: str, client: str) -> None:
        """Raises ``ConflictError`` when the post has an open appeal."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(appeals.c.id, appeals.c.filed_at).where(
                    appeals.c.client == client,
                    appeals.c.post_id == post_id,
                    appeals.c.status == AppealStatus.open.value,
                )
            ).first()
        if row is not None:
            raise ConflictError(
                f"post {post_id!r} has an open appeal already ({row.id}, filed "
                f"{row.filed_at.isoformat()}); one appeal at a time: wait for its outcome"
            )

    # -- reading -----------------------------------------------------------------------

    def get(self, appeal_id: int, *, clients: Collection[str] | None = None) -> Appeal:
        """One appeal (of ``clients``' posts, when given). Raises ``NotFoundError``."""
        if isinstance(appeal_id, bool) or not 0 < appeal_id < 2**63:
            raise NotFoundError(f"no appeal {appeal_id!r}; 'amber appeal list' lists them")
        query = sa.select(appeals).where(appeals.c.id == appeal_id)
        if clients is not None:
            query = query.where(appeals.c.client.in_(list(clients)))
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no appeal {appeal_id}; 'amber appeal list' lists them")
        return _appeal(row)

    def find(
        self,
        *,
        status: AppealStatus | str | None = None,
        post_id: str | None = None,
        clients: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Appeal]:
        """Appeals, open ones first by their target date (the most pressing first), then
        the decided ones, the latest decided first; with ``status``, ``post_id`` or
        ``clients``, only those. Raises ``UserError`` for an unknown status or a ``limit``
        out of range."""
        if not 1 <= limit <= MAX_LIMIT:
            raise UserError(f"limit {limit} is out of range; give 1 to {MAX_LIMIT}")
        query = sa.select(appeals).order_by(
            appeals.c.status != AppealStatus.open.value,
            sa.case(
                (appeals.c.status == AppealStatus.open.value, appeals.c.due_at),
                else_=None,
            ),
            appeals.c.decided_at.desc(),
            appeals.c.id.desc(),
        )
        if status is not None:
            query = query.where(appeals.c.status == _enum(AppealStatus, status, "status").value)
        if post_id is not None:
            query = query.where(appeals.c.post_id == post_id)
        if clients is not None:
            query = query.where(appeals.c.client.in_(list(clients)))
        with self.db.connect() as conn:
            return [_appeal(r) for r in conn.execute(query.limit(limit))]

    def deciders(self, appeal: Appeal) -> list[str]:
        """The reviewers who recorded an outcome on the appealed post: none of them may
        decide its appeal."""
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    sa.select(review_outcomes.c.reviewer)
                    .where(
                        review_outcomes.c.client == appeal.client,
                        review_outcomes.c.post_id == appeal.post_id,
                        review_outcomes.c.outcome.in_(OUTCOMES),
                    )
                    .distinct()
                    .order_by(review_outcomes.c.reviewer)
                ).scalars()
            )

    # -- deciding ----------------------------------------------------------------------

    def decide(
        self, appeal_id: int, reviewer: str, outcome: AppealOutcome | str, *, reason: str
    ) -> Appeal:
        """Decide an open appeal: ``uphold`` (the restriction stands) or ``reverse`` (the
        post is restored: see the module's description), with a reason the user is told.

        Raises ``UserError`` for an unknown outcome or no reason, ``NotFoundError``,
        ``ConflictError`` for an appeal decided already or a reviewer who decided the
        post, ``EvidenceWriteError`` (503, nothing recorded) when the custody event
        cannot be staged, ``ActPendingError`` (503) when the outcome is recorded and its
        custody event is pending.
        """
        chosen: AppealOutcome = _enum(AppealOutcome, outcome, "appeal outcome")
        if not reason.strip():
            raise UserError("an appeal's outcome needs a reason: the user is told why")
        if not reviewer.strip():
            raise UserError("an appeal's outcome needs the reviewer's name")
        appeal = self.get(appeal_id)
        if appeal.status is not AppealStatus.open:
            raise ConflictError(
                f"appeal {appeal_id} was {appeal.status.value} already, by "
                f"{appeal.reviewer!r} at {_iso(appeal.decided_at)}"
            )
        if reviewer in self.deciders(appeal):
            raise ConflictError(
                f"reviewer {reviewer!r} decided post {appeal.post_id!r} and may not decide "
                f"its appeal {appeal_id}: an appeal is decided by a reviewer who did not "
                "decide the post; ask another reviewer"
            )
        now = self.clock()
        restores = chosen is AppealOutcome.reverse and self._restricted(appeal)
        action = RESTORE if restores else None
        key = self._stage(
            appeal.post_id,
            appeal.client,
            appeal.version,
            {
                "event": "appeal_decided",
                "actor": f"reviewer {reviewer} via {ACTOR}",
                "appeal": appeal.id,
                "outcome": chosen.value,
                "action": action,
                "reason": reason,
                "decided_at": now.isoformat(),
            },
            source=f"appeal {appeal.id} decided by {reviewer!r}",
        )
        try:
            decided = self._record(appeal, reviewer, chosen, reason, action, now)
        except BaseException:
            self._discard(key)
            raise
        self._finish(key, f"the outcome of appeal {appeal.id} is recorded")
        return decided

    def _restricted(self, appeal: Appeal) -> bool:
        """Is the version appealed still the post's newest, with a restriction in force?"""
        with self.db.connect() as conn:
            newest = conn.execute(
                sa.select(decisions.c.version).where(
                    decisions.c.client == appeal.client, decisions.c.post_id == appeal.post_id
                )
            ).scalar_one_or_none()
        if newest != appeal.version:
            return False
        try:
            found = self.statements.for_post(appeal.post_id, client=appeal.client)
        except NotFoundError:
            return False
        return any(s.version == appeal.version and s.status is Status.in_force for s in found)

    def _record(
        self,
        appeal: Appeal,
        reviewer: str,
        chosen: AppealOutcome,
        reason: str,
        action: str | None,
        now: datetime,
    ) -> Appeal:
        """Store the outcome, restore the post when ``action`` says so, tell the webhooks;
        one transaction."""
        with self.db.begin() as conn:
            done = conn.execute(
                appeals.update()
                .where(appeals.c.id == appeal.id, appeals.c.status == AppealStatus.open.value)
                .values(
                    status=STATUS[chosen].value,
                    reviewer=reviewer,
                    reason=reason,
                    action=action,
                    decided_at=now,
                )
                .returning(*appeals.c)
            ).first()
            if done is None:
                raise ConflictError(f"appeal {appeal.id} was decided meanwhile; reload it")
            mine = sa.and_(
                decisions.c.client == appeal.client,
                decisions.c.post_id == appeal.post_id,
            )
            if action == RESTORE:
                row = conn.execute(
                    decisions.update()
                    .where(mine, decisions.c.version == appeal.version)
                    .values(review_state="reversed")
                    .returning(*decisions.c)
                ).first()
                if row is None:
                    raise ConflictError(
                        f"post {appeal.post_id!r} has new content since; reload the appeal"
                    )
                conn.execute(review_locks.delete().where(review_locks.c.post_id == appeal.post_id))
            else:
                row = conn.execute(sa.select(decisions).where(mine)).one()
            decided = _appeal(done)
            emit(
                conn,
                Event.appeal,
                {**event_payload(row._mapping), "appeal": decided.to_json()},
                now=now,
            )
        return decided

    # -- custody -----------------------------------------------------------------------

    def _stage(
        self, post_id: str, client: str, version: int, event: Mapping[str, Any], *, source: str
    ) -> str | None:
        if self.custody is None:
            return None
        return self.custody.stage_event(
            post_id, event, client=client, version=version, source=source
        )

    def _finish(self, key: str | None, stored: str) -> None:
        if self.custody is not None and key is not None:
            self.custody.finish(key, stored=stored)

    def _discard(self, key: str | None) -> None:
        if self.custody is not None and key is not None:
            self.custody.discard(key)


def _enum(kind: type[Any], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise UserError(f"{what} {value!r} is unknown; use one of: {allowed}") from None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _appeal(row: Any) -> Appeal:
    return Appeal(
        id=int(row.id),
        post_id=row.post_id,
        client=row.client,
        version=int(row.version),
        statement=row.statement,
        decision_at=row.decision_at,
        text=row.text,
        filed_by=row.filed_by,
        filed_at=row.filed_at,
        due_at=row.due_at,
        status=AppealStatus(row.status),
        reviewer=row.reviewer,
        reason=row.reason,
        action=row.action,
        decided_at=row.decided_at,
    )
