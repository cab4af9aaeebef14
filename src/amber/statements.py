"""Statements of reasons (EU DSA Art. 17) for amber's restrictions, in the DSA Transparency
Database's schema and field names (``amber.dsa``), ready for its batch endpoint.

Every decision that restricts a post has a statement: amber's own at the scan (verdict
``restrict``: the post hidden pending review, its poll frozen; ``remove``) and each
reviewer's confirmation (removed, or kept hidden). A statement records one decision: its
PUID is made from the post, its version and the decision, and never changes. Of a post's
statements the newest is ``in_force``; one a later decision replaced is ``superseded``
(so is the last of a version that new content under the post id replaced); a reversal (a
reviewer's reject; an appeal later) ends the restriction: the statement in force gets the
day as ``end_date_visibility_restriction`` and the status ``reversed``. The database has
no way to change or withdraw a statement once submitted, so a reversal adds none; a
statement not yet submitted carries its end date.

A statement is dated by its decision: a scan's by when amber first decided that version of
the post (``first_scanned_at``: a rescan of the same content keeps the date, so a
statement never moves to a later batch), a reviewer's by the outcome's time. Batches
(``Statements.batches``) hold the statements decided in a time range, at most
``BATCH_SIZE`` each, in the body shape of ``POST /api/v1/statements``, each checked
against the schema.

``statements_for`` is the pure core: one decided version of a post, the acts of people on
it in time order, the platform's settings: its statements. ``Statements`` reads the acts
from the review outcomes (``acts_from_reviews``) and from the appeals that restored the
version appealed (``acts_from_appeals``, ``amber.review.appeals``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.atomic_write import write_atomic
from amber.dsa import BATCH_SIZE, check_batch, statement_schema
from amber.errors import ConflictError, NotFoundError, UserError
from amber.policy import Verdict
from amber.policy.statements import ILLEGAL, Classification, StatementSettings
from amber.store.tables import (
    appeals,
    decision_versions,
    decisions,
    media_signals,
    review_outcomes,
)

if TYPE_CHECKING:
    from amber.engine import Engine

#: Removal orders (EU 2021/784 Art. 3): the ground of a removal made on one.
ORDER_LEGAL_GROUND = (
    "Regulation (EU) 2021/784 on addressing the dissemination of terrorist content online, "
    "Article 3: removal order issued by a competent authority"
)
ORDER_REFERENCE_URL = "https://eur-lex.europa.eu/eli/reg/2021/784/oj"
ORDER_CLASSIFICATION = Classification(
    "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY", ("KEYWORD_TERRORIST_CONTENT",)
)
#: Media files of these kinds are videos when amber did not hash them as one.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
#: The database's limit for ``decision_facts`` and for an explanation.
FACTS_LENGTH = 5000
EXPLANATION_LENGTH = 2000
#: How many of a decision's reasons the facts describe.
REASONS_SHOWN = 8
#: Posts whose history is read in one query.
CHUNK = 400
RESTRICTING = (Verdict.restrict.value, Verdict.remove.value)


class Basis(StrEnum):
    """Whose decision a statement records."""

    scan = "scan"  # amber's, when it decided the post
    review = "review"  # a person's


class Status(StrEnum):
    """Where a statement's restriction stands now."""

    in_force = "in_force"
    superseded = "superseded"  # a later decision (or a newer version of the post) replaced it
    reversed = "reversed"  # lifted by a person: its end date is set


class ActKind(StrEnum):
    """What a person did to a decided post."""

    remove = "remove"  # removed it
    restrict = "restrict"  # kept it hidden, or hid it
    reverse = "reverse"  # lifted the restriction (a reviewer's reject, an appeal upheld)


@dataclass(frozen=True, slots=True)
class Act:
    """A person's act on one version of a post that makes, or ends, a restriction."""

    kind: ActKind
    at: datetime
    #: Names the act in PUIDs, stable and unique among the post's acts (``review-12``).
    key: str
    #: Who acted, as the statement's facts say it.
    by: str = "a reviewer"


@dataclass(frozen=True, slots=True)
class DecidedPost:
    """One version of a post as amber decided it: what its statements are made of."""

    post_id: str
    client: str
    version: int
    verdict: Verdict
    #: The decision's reasons as stored (``Reason.to_json()``).
    reasons: tuple[Mapping[str, Any], ...]
    actions: tuple[str, ...]
    #: ``CONTENT_TYPE_*`` values (``content_types``).
    content_types: tuple[str, ...]
    first_scanned_at: datetime
    #: When the post says it was made.
    created_at: datetime | None = None
    #: When the latest removal order for this version arrived.
    removal_ordered_at: datetime | None = None
    #: When new content under the post id replaced this version (``None``: the newest).
    superseded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of reasons: the database's fields (``fields``) and where it stands."""

    puid: str
    post_id: str
    client: str
    version: int
    basis: Basis
    decided_at: datetime
    status: Status
    #: When a person lifted the restriction (status ``reversed``).
    ended_at: datetime | None
    #: The statement in the database's schema: the submission shape.
    fields: Mapping[str, Any]

    def to_submission(self) -> dict[str, Any]:
        """The statement as the database takes it (an item of a batch's ``statements``)."""
        return dict(self.fields)

    def to_json(self) -> dict[str, Any]:
        """The statement with amber's record of it, as the CLI and the API write it."""
        return {
            "puid": self.puid,
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "basis": self.basis.value,
            "decided_at": self.decided_at.isoformat(),
            "status": self.status.value,
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "statement": self.to_submission(),
        }


@dataclass(frozen=True, slots=True)
class _Draft:
    basis: Basis
    at: datetime
    event: str
    removes: bool
    by: str | None = None
    status: Status = Status.in_force
    ended_at: datetime | None = None


# -- the pure core --------------------------------------------------------------------


def statements_for(
    post: DecidedPost, acts: Iterable[Act], settings: StatementSettings
) -> list[Statement]:
    """Every statement of one decided version of a post, oldest first: amber's, when its
    verdict restricts, then one per act that restricts (each supersedes the one before);
    a ``reverse`` act ends the one in force. ``acts`` may come in any order."""
    drafts: list[_Draft] = []
    if post.verdict.value in RESTRICTING:
        drafts.append(
            _Draft(
                Basis.scan,
                post.first_scanned_at,
                f"scan-{post.verdict.value}",
                removes=post.verdict is Verdict.remove,
            )
        )
    for act in sorted(acts, key=lambda a: a.at):
        open_one = bool(drafts) and drafts[-1].status is Status.in_force
        if act.kind is ActKind.reverse:
            if open_one:
                drafts[-1] = replace(drafts[-1], status=Status.reversed, ended_at=act.at)
            continue
        if open_one:
            drafts[-1] = replace(drafts[-1], status=Status.superseded)
        drafts.append(
            _Draft(Basis.review, act.at, act.key, removes=act.kind is ActKind.remove, by=act.by)
        )
    if post.superseded_at is not None and drafts and drafts[-1].status is Status.in_force:
        drafts[-1] = replace(drafts[-1], status=Status.superseded)
    return [_statement(post, draft, settings) for draft in drafts]


def acts_from_reviews(rows: Iterable[Any]) -> list[Act]:
    """Reviewers' outcomes (``review_outcomes`` rows: id, outcome, action, decided_at) as
    acts: a confirmation removes or keeps hidden, a reject reverses, an escalation does
    neither."""
    acts = []
    for row in rows:
        if row.outcome == "confirm":
            kind = ActKind.remove if row.action == "remove" else ActKind.restrict
        elif row.outcome == "reject":
            kind = ActKind.reverse
        else:
            continue
        acts.append(Act(kind, row.decided_at, f"review-{row.id}"))
    return acts


def acts_from_appeals(rows: Iterable[Any]) -> list[Act]:
    """Appeals that restored a post (``appeals`` rows: id, action, decided_at) as acts: a
    reversal on the user's appeal lifts the restriction (DSA Art. 20)."""
    return [
        Act(ActKind.reverse, row.decided_at, f"appeal-{row.id}", by="a reviewer, on appeal")
        for row in rows
        if row.action == "restore" and row.decided_at is not None
    ]


def puid(post: DecidedPost, event: str) -> str:
    """The PUID of ``post``'s statement for ``event``: the post id's letters, digits, ``-``
    and ``_``, the version and the event, then 12 hex digits of a SHA-256 over the exact
    client, post id, version and event (two clients' posts, or ids that differ only in
    other characters, never share one)."""
    exact = "\x00".join((post.client, post.post_id, str(post.version), event))
    digest = hashlib.sha256(exact.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", post.post_id)[:200].strip("_") or "post"
    return f"{slug}-v{post.version}-{event}-{digest}"


def content_types(post_json: str, videos: Collection[int] = ()) -> tuple[str, ...]:
    """The ``content_type`` of a post as received (its JSON): text for its text or poll,
    for each media file a video (``videos``: the positions amber hashed as videos, or a
    video file's suffix) or an image; other when it has none of these."""
    try:
        post = json.loads(post_json)
    except (json.JSONDecodeError, RecursionError):
        post = {}
    post = post if isinstance(post, dict) else {}
    found = set()
    if post.get("text") or post.get("poll"):
        found.add("CONTENT_TYPE_TEXT")
    media = post.get("media")
    for position, item in enumerate(media if isinstance(media, list) else []):
        path = str(item.get("path", "")) if isinstance(item, dict) else ""
        video = position in videos or Path(path).suffix.lower() in VIDEO_SUFFIXES
        found.add("CONTENT_TYPE_VIDEO" if video else "CONTENT_TYPE_IMAGE")
    return tuple(sorted(found)) or ("CONTENT_TYPE_OTHER",)


def _source_type(post: DecidedPost, *, ordered: bool) -> str:
    """Where the decision came from: an authority's order (an other notification), a
    user's report (a notice under DSA Art. 16: ``POST /v1/reports``), or amber's own
    detection (voluntary)."""
    if ordered:
        return "SOURCE_TYPE_OTHER_NOTIFICATION"
    if any(r.get("report") for r in post.reasons):
        return "SOURCE_ARTICLE_16"
    return "SOURCE_VOLUNTARY"


def _statement(post: DecidedPost, draft: _Draft, settings: StatementSettings) -> Statement:
    ordered = (
        draft.basis is Basis.review
        and post.removal_ordered_at is not None
        and post.removal_ordered_at <= draft.at
    )
    classes = [settings.classify(r) for r in post.reasons if r.get("signal") != "media"]
    if ordered:
        classes.insert(0, ORDER_CLASSIFICATION)
    if not classes:
        classes = [settings.default]
    category = classes[0].category
    additions = list(dict.fromkeys(c.category for c in classes[1:] if c.category != category))
    keywords = list(dict.fromkeys(k for c in classes for k in c.keywords))
    found = _findings(post.reasons)
    fields: dict[str, Any] = {
        "decision_visibility": _visibility(post, draft),
        "decision_facts": _clip(_facts(post, draft, found, ordered), FACTS_LENGTH),
        "content_type": list(post.content_types),
        "category": category,
        "territorial_scope": list(settings.territorial_scope),
        "content_date": _content_date(post).isoformat(),
        "application_date": draft.at.astimezone(UTC).date().isoformat(),
        "source_type": _source_type(post, ordered=ordered),
        "automated_detection": "Yes" if post.reasons else "No",
        "automated_decision": (
            "AUTOMATED_DECISION_FULLY"
            if draft.basis is Basis.scan
            else "AUTOMATED_DECISION_PARTIALLY"
            if post.reasons
            else "AUTOMATED_DECISION_NOT_AUTOMATED"
        ),
        "puid": puid(post, draft.event),
    }
    if "CONTENT_TYPE_OTHER" in post.content_types:
        fields["content_type_other"] = "a post without text or media"
    if additions:
        fields["category_addition"] = additions
    if keywords:
        fields["category_specification"] = keywords
    if ordered:
        fields.update(
            decision_ground=ILLEGAL,
            decision_ground_reference_url=ORDER_REFERENCE_URL,
            illegal_content_legal_ground=ORDER_LEGAL_GROUND,
            illegal_content_explanation=_clip(
                "A competent authority ordered the removal of this content as terrorist "
                "content under Article 3 of Regulation (EU) 2021/784; the platform must "
                "remove it or disable access to it within one hour of receiving the order."
                + (f" amber had also found that {found}." if found else ""),
                EXPLANATION_LENGTH,
            ),
        )
    else:
        fields["decision_ground"] = settings.ground
        if settings.reference_url is not None:
            fields["decision_ground_reference_url"] = settings.reference_url
        why = _clip(_explanation(found, settings.ground == ILLEGAL), EXPLANATION_LENGTH)
        if settings.ground == ILLEGAL:
            fields["illegal_content_legal_ground"] = settings.legal_ground
            fields["illegal_content_explanation"] = why
        else:
            fields["incompatible_content_ground"] = settings.terms_ground
            fields["incompatible_content_explanation"] = why
    if settings.account_type is not None:
        fields["account_type"] = settings.account_type
    if draft.ended_at is not None:
        fields["end_date_visibility_restriction"] = (
            draft.ended_at.astimezone(UTC).date().isoformat()
        )
    order = list(statement_schema()["$defs"]["statement"]["properties"])
    fields = dict(sorted(fields.items(), key=lambda item: order.index(item[0])))
    return Statement(
        puid=fields["puid"],
        post_id=post.post_id,
        client=post.client,
        version=post.version,
        basis=draft.basis,
        decided_at=draft.at,
        status=draft.status,
        ended_at=draft.ended_at,
        fields=fields,
    )


def _visibility(post: DecidedPost, draft: _Draft) -> list[str]:
    if draft.removes:
        return ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    found = ["DECISION_VISIBILITY_CONTENT_DISABLED"]
    if "freeze_poll" in post.actions:
        found.append("DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED")
    return found


def _content_date(post: DecidedPost) -> date:
    """When the platform began hosting it: the post's own time when it is plausible (not
    before 2000, the database's floor, nor after amber first saw it), else when amber
    first saw it."""
    seen = post.first_scanned_at.astimezone(UTC).date()
    if post.created_at is None:
        return seen
    made = post.created_at.astimezone(UTC).date()
    return made if date(2000, 1, 1) <= made <= seen else seen


def _describe(reason: Mapping[str, Any]) -> str:
    """One reason that is not a bank match in words, from its structured fields only (a
    reason's ``detail`` quotes the post and may name people: it never goes into a
    statement)."""
    signal = str(reason.get("signal"))
    score = reason.get("score")
    scored = f" (score {score:.2f})" if isinstance(score, int | float) else ""
    if signal == "harm_poll":
        what = {
            "vote": "it asks its audience to vote on whether a person is harmed or killed",
            "announcement": "it announces the outcome of a vote on harming or killing a person",
            "follow_up": "it follows a poll on harming or killing a person by the same author",
        }.get(str(reason.get("label")), "it reads as a vote on harming a person")
        return what + scored
    if signal == "media":
        return "a media file of the post could not be read"
    return f"the {signal} signal found {reason.get('label') or 'a match'}{scored}"


def _findings(reasons: Sequence[Mapping[str, Any]]) -> str:
    """The reasons in words, each once (a bank's matches together, with the signal types
    that matched and the nearest distance), at most ``REASONS_SHOWN``."""
    order: list[str | tuple[str, str | None]] = []
    banks: dict[tuple[str, str | None], tuple[list[str], int | None]] = {}
    for reason in reasons:
        if reason.get("bank") is None:
            text = _describe(reason)
            if text not in order:
                order.append(text)
            continue
        key = (str(reason["bank"]), reason.get("label"))
        if key not in banks:
            banks[key] = ([], None)
            order.append(key)
        signals, nearest = banks[key]
        signal, distance = str(reason.get("signal")), reason.get("distance")
        if signal not in signals:
            signals.append(signal)
        if isinstance(distance, int) and (nearest is None or distance < nearest):
            nearest = distance
        banks[key] = (signals, nearest)
    words = [item if isinstance(item, str) else _matched(item, *banks[item]) for item in order]
    more = len(words) - REASONS_SHOWN
    return "; ".join(words[:REASONS_SHOWN]) + (f"; and {more} more finding(s)" if more > 0 else "")


def _matched(bank: tuple[str, str | None], signals: list[str], nearest: int | None) -> str:
    name, label = bank
    labelled = f", labelled {label!r}" if label else ""
    near = f", distance {nearest}" if nearest is not None else ""
    return (
        f"its media matched content in the hash bank {name!r}{labelled} "
        f"(by {', '.join(signals)}{near})"
    )


def _facts(post: DecidedPost, draft: _Draft, found: str, ordered: bool) -> str:
    parts = []
    if ordered and post.removal_ordered_at is not None:
        day = post.removal_ordered_at.astimezone(UTC).date().isoformat()
        parts.append(
            f"A removal order of a competent authority under Regulation (EU) 2021/784 "
            f"was received for this content on {day}."
        )
    if found:
        parts.append(f"The platform's automated detection (amber) found that {found}.")
    frozen = "freeze_poll" in post.actions
    if draft.basis is Basis.scan:
        if draft.removes:
            parts.append(
                "The content was removed automatically, as a confident match to content "
                "already confirmed as violating."
            )
        else:
            parts.append(
                "The content was hidden automatically pending review by a person"
                + (", and its poll frozen so that it takes no more votes." if frozen else ".")
            )
    else:
        who = (draft.by or "a reviewer").capitalize()
        done = "removed it" if draft.removes else "kept it hidden"
        checked = f", confirmed the finding and {done}" if found else f" and {done}"
        parts.append(f"{who} reviewed the content{checked}.")
    return " ".join(parts)


def _explanation(found: str, illegal: bool) -> str:
    rule = (
        "the law relied on makes such content illegal"
        if illegal
        else "the section of the terms of service relied on does not allow such content"
    )
    if not found:
        return f"A person who reviewed the content found that {rule}."
    return f"The content was restricted because {found}; {rule}."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- reading them from the store ----------------------------------------------------------


def parse_moment(text: str, name: str, *, end: bool = False) -> datetime:
    """An ISO 8601 date or time as a UTC-aware time; a time without a zone is UTC. A bare
    date is the start of that day, or with ``end`` the start of the next (``--to
    2026-12-06`` takes in the whole day). Raises ``UserError`` naming ``name``."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
        else:
            moment = datetime.fromisoformat(text.strip())
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a time; or past year 9999 in UTC
        raise UserError(
            f"{name} {text!r} is not an ISO 8601 date or time; e.g. 2026-12-06 or "
            "2026-12-06T13:05:00Z"
        ) from None


def parse_range(
    start: str, end: str, *, names: tuple[str, str] = ("from", "to")
) -> tuple[datetime, datetime]:
    """``start`` and ``end`` (as ``parse_moment`` reads them, a bare ``end`` date taking in
    its whole day) as a half-open range. Raises ``UserError`` for a bad value or an empty
    range."""
    begin, finish = parse_moment(start, names[0]), parse_moment(end, names[1], end=True)
    if finish <= begin:
        raise UserError(
            f"{names[1]} {end!r} is not after {names[0]} {start!r}; give a later {names[1]}"
        )
    return begin, finish


def batches(statements: Sequence[Statement]) -> list[dict[str, Any]]:
    """``statements`` as request bodies of the database's batch endpoint, at most
    ``BATCH_SIZE`` each, in order; each checked against the schema (``StatementSchemaError``
    if amber made one wrong)."""
    bodies = []
    for i in range(0, len(statements), BATCH_SIZE):
        body = {"statements": [s.to_submission() for s in statements[i : i + BATCH_SIZE]]}
        check_batch(body)
        bodies.append(body)
    return bodies


def batch_files(folder: Path, start: datetime, end: datetime, count: int) -> list[Path]:
    """Where ``write_batches`` puts ``count`` batches of the range: ``statements-<start>-
    <end>-0001.json`` and on, the times in UTC."""
    span = f"{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return [folder / f"statements-{span}-{n:04d}.json" for n in range(1, count + 1)]


def write_batches(
    bodies: Sequence[Mapping[str, Any]], folder: Path, start: datetime, end: datetime
) -> list[Path]:
    """Write each body to its file (``batch_files``), whole or not at all. Raises
    ``ConflictError`` when the folder holds files of this range already (an earlier run:
    submitting both would send PUIDs twice), before writing any."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = batch_files(folder, start.astimezone(UTC), end.astimezone(UTC), len(bodies))
    prefix = paths[0].name.rsplit("-", 1)[0] if paths else None
    if prefix is not None:
        earlier = sorted(folder.glob(f"{prefix}-*.json"))
        if earlier:
            raise ConflictError(
                f"{folder} holds statements of this range already ({earlier[0].name}); "
                "submit or remove them first, or write to another folder"
            )
    for path, body in zip(paths, bodies, strict=True):
        text = json.dumps(body, ensure_ascii=False, indent=1) + "\n"
        write_atomic(path, text.encode("utf-8"))
    return paths


class Statements:
    """The statements of reasons of the posts in one database, under one policy's
    ``[statements]`` settings."""

    def __init__(self, db: sa.Engine, settings: StatementSettings) -> None:
        self.db = db
        self.settings = settings

    @classmethod
    def of(cls, engine: Engine) -> Statements:
        """The statements of ``engine``'s database under its policy's settings."""
        return cls(engine.db, engine.policy.statements)

    def for_post(self, post_id: str, *, client: str | None = None) -> list[Statement]:
        """Every statement of every version of ``client``'s post (without ``client``: of
        the only client holding ``post_id``), oldest first; the last is the newest.

        Raises ``NotFoundError`` for a post with no decision, or with no restriction
        (so no statement), ``ConflictError`` when several clients hold ``post_id`` and
        ``client`` is not given.
        """
        with self.db.connect() as conn:
            query = sa.select(decisions.c.client, decisions.c.verdict).where(
                decisions.c.post_id == post_id
            )
            if client is not None:
                query = query.where(decisions.c.client == client)
            rows = conn.execute(query.order_by(decisions.c.client).limit(6)).all()
            if not rows:
                raise NotFoundError(f"no decision for post {post_id!r}; submit it first")
            if len(rows) > 1:
                held = ", ".join(repr(r.client) for r in rows[:5])
                raise ConflictError(
                    f"post id {post_id!r} is held by clients {held}; say which (client=NAME)"
                )
            owner = str(rows[0].client)
            found = self._statements(conn, [(owner, post_id)])
        if not found:
            raise NotFoundError(
                f"post {post_id!r} has no statement of reasons: amber did not restrict it "
                f"(verdict {rows[0].verdict}) and no reviewer removed or hid it"
            )
        return found

    def between(
        self, start: datetime, end: datetime, *, clients: Collection[str] | None = None
    ) -> list[Statement]:
        """The statements decided at or after ``start`` and before ``end`` (of ``clients``'
        posts only, when given), by when they were decided, then PUID. Raises
        ``UserError`` for a time without a zone."""
        for name, moment in (("start", start), ("end", end)):
            if moment.utcoffset() is None:
                raise UserError(f"{name} {moment.isoformat()!r} has no time zone; add one (Z)")
        keys: set[tuple[str, str]] = set()
        with self.db.connect() as conn:
            for table in (decisions, decision_versions):
                query = sa.select(table.c.client, table.c.post_id).where(
                    table.c.verdict.in_(RESTRICTING),
                    table.c.first_scanned_at >= start,
                    table.c.first_scanned_at < end,
                )
                keys.update((r.client, r.post_id) for r in conn.execute(query))
            reviewed = sa.select(review_outcomes.c.client, review_outcomes.c.post_id).where(
                review_outcomes.c.outcome == "confirm",
                review_outcomes.c.decided_at >= start,
                review_outcomes.c.decided_at < end,
            )
            keys.update((r.client, r.post_id) for r in conn.execute(reviewed))
            if clients is not None:
                keys = {k for k in keys if k[0] in clients}
            found = self._statements(conn, sorted(keys))
        chosen = [s for s in found if start <= s.decided_at < end]
        return sorted(chosen, key=lambda s: (s.decided_at, s.puid))

    def batches(
        self, start: datetime, end: datetime, *, clients: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """The statements ``between`` ``start`` and ``end`` as request bodies of the
        database's batch endpoint (``batches``)."""
        return batches(self.between(start, end, clients=clients))

    def _statements(self, conn: sa.Connection, keys: Sequence[tuple[str, str]]) -> list[Statement]:
        """Every statement of the posts ``keys`` (client, post id), post by post."""
        out: list[Statement] = []
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            for post, acts in _histories(conn, chunk):
                out.extend(statements_for(post, acts, self.settings))
        return out


def _histories(
    conn: sa.Connection, keys: Sequence[tuple[str, str]]
) -> list[tuple[DecidedPost, list[Act]]]:
    """Each version of the posts ``keys`` with the acts on it: the reviewers' outcomes
    recorded while it was the newest version."""
    wanted = sa.tuple_
    current = conn.execute(
        sa.select(decisions).where(wanted(decisions.c.client, decisions.c.post_id).in_(list(keys)))
    ).all()
    earlier = conn.execute(
        sa.select(decision_versions)
        .where(wanted(decision_versions.c.client, decision_versions.c.post_id).in_(list(keys)))
        .order_by(decision_versions.c.version)
    ).all()
    outcomes = conn.execute(
        sa.select(review_outcomes)
        .where(wanted(review_outcomes.c.client, review_outcomes.c.post_id).in_(list(keys)))
        .order_by(review_outcomes.c.decided_at, review_outcomes.c.id)
    ).all()
    videos: dict[int, set[int]] = {}
    ids = [r.id for r in current]
    if ids:
        for row in conn.execute(
            sa.select(media_signals.c.decision, media_signals.c.position)
            .where(media_signals.c.decision.in_(ids), media_signals.c.signal_type == "vpdq")
            .distinct()
        ):
            videos.setdefault(int(row.decision), set()).add(int(row.position))
    versions: dict[tuple[str, str], list[DecidedPost]] = {}
    for row in earlier:
        versions.setdefault((row.client, row.post_id), []).append(
            _decided(row, (), row.superseded_at)
        )
    for row in current:
        versions.setdefault((row.client, row.post_id), []).append(
            _decided(row, videos.get(int(row.id), ()), None)
        )
    reviews: dict[tuple[str, str], list[Any]] = {}
    for row in outcomes:
        reviews.setdefault((row.client, row.post_id), []).append(row)
    # Appeals name the version they appealed: a reversal is an act on that version.
    restored: dict[tuple[str, str, int], list[Any]] = {}
    for appeal in conn.execute(
        sa.select(
            appeals.c.id,
            appeals.c.client,
            appeals.c.post_id,
            appeals.c.version,
            appeals.c.action,
            appeals.c.decided_at,
        ).where(
            wanted(appeals.c.client, appeals.c.post_id).in_(list(keys)),
            appeals.c.action == "restore",
        )
    ):
        restored.setdefault((appeal.client, appeal.post_id, int(appeal.version)), []).append(appeal)
    out = []
    for key in keys:
        rows = reviews.get(key, [])
        since: datetime | None = None
        for post in versions.get(key, []):
            mine = [
                r
                for r in rows
                if (since is None or r.decided_at >= since)
                and (post.superseded_at is None or r.decided_at < post.superseded_at)
            ]
            appealed = restored.get((*key, post.version), [])
            out.append((post, acts_from_reviews(mine) + acts_from_appeals(appealed)))
            since = post.superseded_at
    return out


def _decided(row: Any, videos: Collection[int], superseded_at: datetime | None) -> DecidedPost:
    return DecidedPost(
        post_id=row.post_id,
        client=row.client,
        version=int(row.version),
        verdict=Verdict(row.verdict),
        reasons=tuple(row.reasons),
        actions=tuple(row.actions),
        content_types=content_types(row.post, videos),
        first_scanned_at=row.first_scanned_at,
        created_at=row.created_at,
        removal_ordered_at=row.removal_ordered_at,
        superseded_at=superseded_at,
    )
