"""User reports: a user tells the platform a post is harmful, the platform tells amber.

``POST /v1/reports`` (``{post_id, category, text, reporter?}``) files one for a post
amber decided (``file_report``). The post is decided again with the report among its
findings (``Engine.decide_again``: its stored JSON and signals, today's banks and
policy): the policy's ``user_report`` rule makes the report a reason (its category as
the label, its text as the detail, its id, reporter and time under ``report``) and sends
the post to a person, so a post amber allowed is reviewed. The review deadline is the
category's hours after the report arrived (the policy's ``[reports]``: a threat to life
within an hour, first in the queue), and the change reaches the platform as a
``decision`` webhook like any other.

A report is kept as a reason of the post's decision: every later decision of the post
(a rescan, a retro-hunt, a new version) keeps it, and ``ReportStore`` lists them by the
time they arrived for the transparency report (docs/reports.md). A reporter reports a
post once per category (a repeat answers the first report); a post keeps at most
``MAX_REPORTS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.decisions import Decision
from amber.errors import ConflictError, ExternalError, NotFoundError, UserError
from amber.policy.reports import SIGNAL, UserReport
from amber.store.tables import decisions
from amber.stored_posts import rebuild

if TYPE_CHECKING:
    from amber.engine import Engine

#: The longest report text and reporter name kept, in characters.
MAX_TEXT = 5000
MAX_REPORTER = 200
#: The most reports one post keeps (each is a reason of its decision).
MAX_REPORTS = 100
#: The largest ``limit`` of a listing.
MAX_LIMIT = 100_000


class ReportNotKept(ExternalError):
    """The post was decided again but could not be stored with the report (its evidence
    could not be kept): nothing was stored; send the report again (HTTP 503)."""

    http_status = 503


@dataclass(frozen=True, slots=True)
class Filed:
    """A report filed (``new``) or one the same reporter had filed already, and the
    post's decision with it."""

    report: UserReport
    decision: Decision
    new: bool
    #: The decision is stored but its evidence is pending (``amber evidence sweep``).
    pending: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``POST /v1/reports`` answers."""
        return {
            "report": self.report.to_json(),
            "new": self.new,
            "post": {
                **self.decision.to_answer(),
                "review_state": self.decision.review_state,
            },
            **({"evidence_pending": self.pending} if self.pending else {}),
        }


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A report as stored, with where its post stands."""

    report: UserReport
    post_id: str
    client: str
    verdict: str
    review_state: str

    def to_json(self) -> dict[str, Any]:
        """As ``amber reports list --format jsonl`` and ``GET /v1/reports`` write it."""
        return {
            **self.report.to_json(),
            "post_id": self.post_id,
            "client": self.client,
            "verdict": self.verdict,
            "review_state": self.review_state,
        }


def file_report(
    engine: Engine,
    post_id: str,
    *,
    category: str,
    text: str,
    reporter: str | None = None,
    client: str,
) -> Filed:
    """File a user's report of ``client``'s post ``post_id`` and decide the post again
    with it (see the module). Raises ``NotFoundError`` for a post amber never decided,
    ``UserError`` for a category the policy does not take or a bad text or reporter,
    ``ConflictError`` when the post keeps the most reports already, ``ReportNotKept``
    (503) when its evidence could not be kept (nothing stored)."""
    category = engine.policy.reports.check(category)
    _taken(engine, category)
    text = _text(text, "text", MAX_TEXT, required=False)
    reporter = None if reporter is None else _text(reporter, "reporter", MAX_REPORTER)
    with engine.write_lock:
        decision = engine.decisions.get(post_id, client=client)
        stored = [r for r in map(UserReport.from_reason, decision.reasons) if r is not None]
        if reporter is not None:
            for earlier in stored:
                if earlier.reporter == reporter and earlier.category == category:
                    return Filed(earlier, decision, new=False)
        if len(stored) >= MAX_REPORTS:
            raise ConflictError(
                f"post {post_id!r} keeps {MAX_REPORTS} reports already, the most it keeps; "
                f"it is {decision.verdict.value}, review {decision.review_state}"
            )
        report = UserReport(
            id=uuid.uuid4().hex,
            category=category,
            text=text,
            received_at=engine.clock(),
            reporter=reporter,
        )
        again = engine.decide_again(rebuild(engine, decision), reports=[report])
        if not again.saved:
            raise ReportNotKept(
                f"the report of post {post_id!r} was not stored: {again.error or again.kept}; "
                "send it again"
            )
        after = engine.decisions.get(post_id, client=client)
    return Filed(report, after, new=True, pending=again.error)


def _taken(engine: Engine, category: str) -> None:
    """Raise ``UserError`` when no ``user_report`` rule of the policy takes ``category``:
    the report would reach no one."""
    for rule in engine.policy.rules:
        if rule.condition.name != "user_report":
            continue
        categories = getattr(rule.condition, "categories", None)
        if categories is None or category in categories:
            return
    raise UserError(
        f"policy {engine.policy.ref} has no user_report rule taking category {category!r}: "
        "a report would reach no one; add one (docs/reports.md)"
    )


def _text(value: object, what: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise UserError(f"report {what} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise UserError(f"report {what} contains a NUL character (\\u0000)")
    if required and not value.strip():
        raise UserError(f"report {what} is empty; give it or leave it out")
    if len(value) > limit:
        raise UserError(f"report {what} is {len(value)} characters long; at most {limit}")
    return value


class ReportStore:
    """The reports kept with the decisions of one database."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db

    def _rows(self, clients: Sequence[str] | None) -> sa.Select[Any]:
        """Decisions whose reasons hold a report (narrowed on the stored JSON's text, as
        ``DecisionStore.find`` narrows by bank), newest scan first."""
        query = (
            sa.select(
                decisions.c.post_id,
                decisions.c.client,
                decisions.c.verdict,
                decisions.c.review_state,
                decisions.c.reasons,
            )
            .where(sa.cast(decisions.c.reasons, sa.Text).contains(f'"{SIGNAL}"', autoescape=True))
            .order_by(decisions.c.scanned_at.desc(), decisions.c.id.desc())
        )
        if clients is not None:
            query = query.where(decisions.c.client.in_(list(clients)))
        return query

    def _each(
        self, query: sa.Select[Any], keep: Callable[[UserReport], bool]
    ) -> list[StoredReport]:
        found = []
        with self.db.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=1000)):
                for reason in row.reasons:
                    report = UserReport.from_reason(reason)
                    if report is not None and keep(report):
                        found.append(
                            StoredReport(
                                report, row.post_id, row.client, row.verdict, row.review_state
                            )
                        )
        return found

    def find(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
        post_id: str | None = None,
        clients: Sequence[str] | None = None,
        limit: int | None = 100,
    ) -> list[StoredReport]:
        """Reports received at or after ``since`` and before ``until``, of ``category``,
        of post ``post_id``, of ``clients``' posts; the newest first, at most ``limit``
        (``None``: all, for counting). Raises ``UserError`` for a time without a zone or a
        bad limit."""
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise UserError(f"{name} {moment.isoformat()!r} has no time zone; add one (Z)")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT
        ):
            raise UserError(f"limit {limit!r} is out of range; give 1 to {MAX_LIMIT}")
        query = self._rows(clients)
        if post_id is not None:
            query = query.where(decisions.c.post_id == post_id)

        def keep(report: UserReport) -> bool:
            return (
                (since is None or report.received_at >= since)
                and (until is None or report.received_at < until)
                and (category is None or report.category == category)
            )

        found = sorted(self._each(query, keep), key=lambda r: r.report.received_at, reverse=True)
        return found if limit is None else found[:limit]

    def get(self, report_id: str, *, clients: Sequence[str] | None = None) -> StoredReport:
        """One report by its id. Raises ``NotFoundError``."""
        if not isinstance(report_id, str) or not report_id.isalnum() or len(report_id) > 64:
            raise NotFoundError(f"no report {report_id!r}")
        query = self._rows(clients).where(
            sa.cast(decisions.c.reasons, sa.Text).contains(report_id, autoescape=True)
        )
        found = self._each(query, lambda r: r.id == report_id)
        if not found:
            raise NotFoundError(f"no report {report_id!r}; 'amber reports list' lists them")
        return found[0]

    def counts(
        self, *, since: datetime, until: datetime, clients: Sequence[str] | None = None
    ) -> dict[str, int]:
        """How many reports arrived from ``since`` to ``until``, by category (the
        transparency report's notices)."""
        out: dict[str, int] = {}
        for found in self.find(since=since, until=until, clients=clients, limit=None):
            out[found.report.category] = out.get(found.report.category, 0) + 1
        return dict(sorted(out.items()))
