"""Decisions: what amber decided about each post, stored once per client and post id.

A post id is scoped to its client (``amber.identity``): two clients' "p1" are two posts.
Scanning the same content again replaces its decision (the banks or the policy may have
changed) and counts the scan; new content under a known id is the post's next version:
the decision it had moves to ``decision_versions`` unchanged and the new one takes its
place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from amber.errors import ConflictError, NotFoundError, UserError
from amber.hashing import MediaHashes
from amber.identity import DEFAULT_CLIENT, item_key
from amber.incidents.linking import link
from amber.policy import Earlier, Outcome, Verdict
from amber.signals import Registry, SignalType, SignalValue
from amber.signals.base import is_own
from amber.store.tables import (
    UTCDateTime,
    decision_versions,
    decisions,
    media_signals,
    post_media,
)
from amber.webhooks import Event, emit, listeners


@dataclass(frozen=True, slots=True)
class Decision:
    """A stored decision."""

    post_id: str
    verdict: Verdict
    reasons: list[dict[str, Any]]
    actions: list[str]
    post: str
    policy: str
    amber_version: str
    first_scanned_at: datetime
    scanned_at: datetime
    scan_count: int
    author: str | None = None
    reply_to: str | None = None
    #: When the post says it was made (``None`` if it did not say).
    created_at: datetime | None = None
    #: Where its human review stands: ``none``, ``pending``, or what a reviewer settled.
    review_state: str = "none"
    #: Where the post came from: its JSONL file, the folder scanned, or ``request``.
    source: str = ""
    #: Whose post: the API token's name, or ``DEFAULT_CLIENT`` for local scans.
    client: str = DEFAULT_CLIENT
    #: Which version of the post this decides (1, then one more per content change).
    version: int = 1
    #: The content decided (``amber.identity.content_digest``); ``None`` before 0007.
    content_digest: str | None = None
    #: Where its evidence stands (``Engine.with_evidence``): ``preserved``, ``pending``,
    #: ``missing``, ``expired`` or ``not_needed``; ``None`` when not looked up.
    evidence: str | None = None
    #: When the latest removal order for the post arrived (``None``: never ordered).
    removal_ordered_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSONL contract's fields, and ``evidence`` when it was looked up."""
        contract = {
            "post_id": self.post_id,
            "verdict": self.verdict.value,
            "reasons": self.reasons,
            "actions": self.actions,
        }
        if self.evidence is not None:
            contract["evidence"] = self.evidence
        return contract

    @property
    def key(self) -> str:
        """The vault item key of this version of the client's post (``item_key``)."""
        return item_key(self.post_id, self.client, self.version)

    def to_answer(self) -> dict[str, Any]:
        """What the HTTP service answers: the contract's fields, whose post and which
        version of it."""
        return {**self.to_json(), "client": self.client, "version": self.version}

    def to_record(self) -> dict[str, Any]:
        """The whole stored decision (the contract's fields first), for people and tools
        that look decisions up (``amber decisions``); ``post`` is the post as received."""
        return {
            **self.to_answer(),
            "author": self.author,
            "reply_to": self.reply_to,
            "created_at": _iso(self.created_at),
            "review_state": self.review_state,
            "first_scanned_at": _iso(self.first_scanned_at),
            "scanned_at": _iso(self.scanned_at),
            "scan_count": self.scan_count,
            "policy": self.policy,
            "amber_version": self.amber_version,
            "content_digest": self.content_digest,
            "post": self.post,
        }


def event_payload(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """A decision as webhooks are told of it, from a ``decisions`` row's mapping or the
    values written to one: ``Decision.to_answer()``'s fields (post_id, verdict, reasons,
    actions, client, version) and ``review_state``. Every event about a post carries it,
    as the post stands after the change (``amber.webhooks``)."""
    return {
        "post_id": fields["post_id"],
        "verdict": str(fields["verdict"]),
        "reasons": list(fields["reasons"]),
        "actions": list(fields["actions"]),
        "client": fields["client"],
        "version": int(fields["version"]),
        "review_state": fields["review_state"],
    }


@dataclass(frozen=True, slots=True)
class NewDecision:
    """A decision about to be stored."""

    post_id: str
    outcome: Outcome
    post: str
    source: str
    #: (position in the post, path as written, hashes) of each media file that was read.
    media: Sequence[tuple[int, str, MediaHashes]]
    author: str | None = None
    reply_to: str | None = None
    #: When a person must have acted: the poll's closing time, if any.
    deadline: datetime | None = None
    created_at: datetime | None = None
    client: str = DEFAULT_CLIENT
    #: ``amber.identity.content_digest`` of the post decided.
    content_digest: str | None = None
    #: The version stored (``DecisionStore.save`` says which).
    version: int = 1


@dataclass(frozen=True, slots=True)
class Related:
    """Another decided post related to one, and why (the console's item page lists them)."""

    post_id: str
    verdict: str
    review_state: str
    author: str | None
    why: str  # "same author", "same media" or "same author, same media"


#: How many related posts ``DecisionStore.related`` lists.
RELATED_LIMIT = 20

#: How many earlier threat-to-life posts' media values (per signal type) are compared
#: with a new post's; "the same photo" is within the type's ``default_threshold``.
MEDIA_CANDIDATES = 2000

#: The columns an earlier version keeps in ``decision_versions``.
KEPT = frozenset(c.name for c in decision_versions.c) - {"id", "superseded_at"}

#: How many clients an ambiguous post id's error names.
MAX_SHOWN = 5

#: Review states a reviewer has settled (``reversed``: on the user's appeal); a new scan
#: of the post does not reopen them.
SETTLED = ("confirmed", "rejected", "escalated", "reversed")
THREAT_TO_LIFE = "escalate:threat_to_life"


class DecisionStore:
    """Reads and writes decisions."""

    def __init__(
        self, db: sa.Engine, *, policy: str, amber_version: str, signals: Registry[SignalType]
    ) -> None:
        self.db = db
        self.policy = policy
        self.amber_version = amber_version
        self.signals = signals

    def save(
        self,
        batch: Sequence[NewDecision],
        *,
        now: datetime,
        replace: bool = True,
        custody: Callable[[sa.Connection, dict[str, int]], None] | None = None,
    ) -> dict[str, int]:
        """Store a batch (of one client's posts) in one transaction: insert new post ids;
        store new content under a known id as its next version (the earlier decision is
        kept in ``decision_versions``); the same content again, with ``replace``, replaces
        its decision (a rescan), without it keeps it. Returns the post ids written, each
        with the version stored.

        Rows are written in (client, post id) order, so processes saving overlapping
        batches at once take their row locks in the same order and never deadlock.

        Each decision stored new (a new post id, a new version) or changed by a rescan (its
        verdict, reasons or actions) is a ``decision`` event for the webhooks, put in their
        outbox in the same transaction (``amber.webhooks.emit``). Each flagged one is linked
        into its incident in that transaction too (``amber.incidents.linking``). Last,
        ``custody`` is called with the transaction and the post ids written (a vault whose
        custody log is in the database appends their ``preserved`` records there), so a
        decision and its custody record are stored together or not at all.
        """
        written: dict[str, int] = {}
        if not batch:
            return written
        with self.db.begin() as conn:
            hooks = listeners(conn)
            for item in sorted(batch, key=lambda item: (item.client, item.post_id)):
                stored = self._upsert(conn, item, now, replace=replace)
                if stored is None:
                    continue
                decision_id, written[item.post_id], told = stored
                if hooks and told is not None:
                    emit(conn, Event.decision, event_payload(told), now=now, to=hooks)
                conn.execute(post_media.delete().where(post_media.c.decision_id == decision_id))
                conn.execute(media_signals.delete().where(media_signals.c.decision == decision_id))
                rows = [_media_row(decision_id, i, path, hashes) for i, path, hashes in item.media]
                if rows:
                    conn.execute(post_media.insert(), rows)
                values = [
                    row
                    for i, _, hashes in item.media
                    for row in _signal_rows(decision_id, i, hashes)
                ]
                if values:
                    conn.execute(media_signals.insert(), values)
                link(conn, decision_id, now=now, signals=self.signals)
            if custody is not None:
                custody(conn, written)
        return written

    def next_version(self, item: NewDecision, *, replace: bool = True) -> int:
        """The version ``save`` would store ``item`` as now: 1 for a new post id, the
        stored version for the same content (or, with ``replace``, for a decision stored
        before 0007, whose content is unknown), else the next one. Its evidence is staged
        under that version before the decision is stored (``Engine._flush``); another
        process may store a version in between, so ``save`` says which was stored."""
        with self.db.connect() as conn:
            old = conn.execute(
                sa.select(decisions.c.version, decisions.c.content_digest).where(
                    decisions.c.client == item.client, decisions.c.post_id == item.post_id
                )
            ).first()
        if old is None:
            return 1
        same = old.content_digest is not None and old.content_digest == item.content_digest
        if same or (old.content_digest is None and replace):
            return int(old.version)
        return int(old.version) + 1

    def _upsert(
        self, conn: sa.Connection, item: NewDecision, now: datetime, *, replace: bool
    ) -> tuple[int, int, dict[str, Any] | None] | None:
        """Write ``item``; returns (row id, version, the values written if webhooks are to
        be told: new, or changed), or ``None`` when the stored decision is kept."""
        values = {
            **item.outcome.to_json(post_id=item.post_id),
            "client": item.client,
            "version": 1,
            "content_digest": item.content_digest,
            "post": item.post,
            "source": item.source,
            "policy": self.policy,
            "amber_version": self.amber_version,
            "first_scanned_at": now,
            "scanned_at": now,
            "scan_count": 1,
            "author": item.author,
            "reply_to": item.reply_to,
            "deadline": item.deadline,
            "created_at": item.created_at,
            "threat_to_life": THREAT_TO_LIFE in item.outcome.actions,
            "review_state": "pending" if "review" in item.outcome.actions else "none",
        }
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
            decisions
        )
        added = conn.execute(
            insert.values(values)
            .on_conflict_do_nothing(index_elements=["client", "post_id"])
            .returning(decisions.c.id)
        ).scalar_one_or_none()
        if added is not None:
            return int(added), 1, values
        # Known: lock its row (SQLite: the insert took the database's write lock).
        old = conn.execute(
            sa.select(decisions)
            .where(decisions.c.client == item.client, decisions.c.post_id == item.post_id)
            .with_for_update()
        ).one()
        values["reasons"] = _keep_reports(old.reasons, values["reasons"])
        same = old.content_digest is not None and old.content_digest == item.content_digest
        if same or (old.content_digest is None and replace):
            if not replace:
                return None
            # A rescan of the same content (or, before 0007, of unknown content).
            values.update(
                version=old.version,
                first_scanned_at=old.first_scanned_at,
                scan_count=old.scan_count + 1,
                reasons=_keep_found_by(old.reasons, values["reasons"]),
            )
            if old.review_state in SETTLED:  # a reviewer's outcome stands
                values["review_state"] = old.review_state
            same_decision = all(
                values[k] == old._mapping[k] for k in ("verdict", "reasons", "actions")
            )
        else:  # new content: the next version, the earlier one kept as it was
            same_decision = False
            conn.execute(
                decision_versions.insert().values(
                    {
                        **{name: old._mapping[name] for name in KEPT},
                        "superseded_at": now,
                    }
                )
            )
            values["version"] = old.version + 1
            # A removal order was for the version it found (that version keeps the time,
            # in ``decision_versions``, and its evidence holds the order); the new content
            # is not under it until an order names it.
            values["removal_ordered_at"] = None
        # A deadline once set (a removal order's hour) is never pushed back.
        if old.deadline is not None and (item.deadline is None or old.deadline < item.deadline):
            values["deadline"] = old.deadline
        conn.execute(decisions.update().where(decisions.c.id == old.id).values(values))
        return int(old.id), int(values["version"]), None if same_decision else values

    def _one(
        self, conn: sa.Connection, post_id: str, client: str | None
    ) -> sa.Row[tuple[Any, ...]]:
        """The decision row of ``post_id`` of ``client``, or of the only client holding
        it. Raises ``NotFoundError``, or ``ConflictError`` when several clients do."""
        query = sa.select(decisions).where(decisions.c.post_id == post_id)
        if client is not None:
            query = query.where(decisions.c.client == client)
        rows = conn.execute(query.order_by(decisions.c.client).limit(MAX_SHOWN)).all()
        if not rows:
            raise NotFoundError(f"no decision for post {post_id!r}; scan it first")
        if len(rows) > 1:
            clients = ", ".join(repr(r.client) for r in rows)
            raise ConflictError(
                f"post id {post_id!r} is held by clients {clients}; say which (client=NAME)"
            )
        return rows[0]

    def get(self, post_id: str, *, client: str | None = None) -> Decision:
        """The decision (newest version) for ``post_id`` of ``client``; without ``client``,
        of the only client holding that post id. Raises ``NotFoundError``, or
        ``ConflictError`` when several clients hold it."""
        with self.db.connect() as conn:
            return _decision(self._one(conn, post_id, client))

    def versions(self, post_id: str, *, client: str | None = None) -> list[Decision]:
        """Every version of a post, the first first (the last is ``get``'s). Raises as
        ``get`` does."""
        with self.db.connect() as conn:
            current = self._one(conn, post_id, client)
            earlier = conn.execute(
                sa.select(decision_versions)
                .where(
                    decision_versions.c.client == current.client,
                    decision_versions.c.post_id == post_id,
                )
                .order_by(decision_versions.c.version)
            ).all()
        return [*(_decision(r) for r in earlier), _decision(current)]

    def earlier(
        self,
        *,
        post_id: str,
        author: str | None,
        reply_to: str | None,
        client: str = DEFAULT_CLIENT,
        limit: int = 20,
        before: datetime | None = None,
        media: Sequence[SignalValue] = (),
        window: timedelta | None = None,
        now: datetime | None = None,
    ) -> list[Earlier]:
        """Decisions related to a post, newest first (at most ``limit`` of each kind): the
        post it replies to, the same author's other posts, and, given the post's media
        values (its PDQ hashes, or any near-match type's), earlier threat-to-life
        decisions whose media are the same photo (within the type's
        ``default_threshold``: 31 bits for PDQ). With ``before`` (the post's own creation
        time), posts created at or after it are left out; with ``window``, posts older
        than ``window`` before it (or before ``now``) too. Only ``client``'s posts: another
        client's author or post id of the same name is someone else."""
        conditions = []
        if reply_to is not None:
            conditions.append(decisions.c.post_id == reply_to)
        if author is not None:
            conditions.append(decisions.c.author == author)
        by_type: dict[str, list[str]] = {}
        for value in media:
            if value.value:
                by_type.setdefault(value.signal_type, []).append(value.value)
        if not conditions and not by_type:
            return []
        since_created = since_scanned = None
        if window is not None and before is not None:
            since_created = before - window
        elif window is not None and now is not None:
            since_scanned = now - window
        columns = (
            decisions.c.post_id,
            decisions.c.author,
            decisions.c.reasons,
            decisions.c.created_at,
            decisions.c.scanned_at,
        )
        found: dict[str, Earlier] = {}
        with self.db.connect() as conn:
            if conditions:
                query = self._related(
                    sa.select(*columns), client, post_id, before, since_created, since_scanned
                )
                query = query.where(sa.or_(*conditions)).limit(limit)
                for row in conn.execute(query).all():
                    found[row.post_id] = Earlier(
                        row.post_id,
                        list(row.reasons),
                        author is not None and row.author == author,
                        row.post_id == reply_to,
                        created_at=row.created_at,
                        scanned_at=row.scanned_at,
                    )
            for signal_type, values in by_type.items():
                compare = self.signals.get(signal_type)
                query = self._related(
                    sa.select(*columns, media_signals.c.value).join(
                        media_signals, media_signals.c.decision == decisions.c.id
                    ),
                    client,
                    post_id,
                    before,
                    since_created,
                    since_scanned,
                )
                query = query.where(
                    decisions.c.threat_to_life.is_(True),
                    media_signals.c.signal_type == signal_type,
                    media_signals.c.variant == "original",
                ).limit(MEDIA_CANDIDATES)
                for row in conn.execute(query).all():
                    distance = min(compare.distance(row.value, v) for v in values)
                    if distance > compare.default_threshold:
                        continue
                    known = found.get(row.post_id)
                    if known is not None and known.media_distance is not None:
                        distance = min(distance, known.media_distance)
                    found[row.post_id] = Earlier(
                        row.post_id,
                        list(row.reasons),
                        known.same_author if known else author is not None and row.author == author,
                        known.replied_to if known else False,
                        created_at=row.created_at,
                        scanned_at=row.scanned_at,
                        media_distance=distance,
                    )
        return sorted(found.values(), key=lambda e: not e.replied_to)

    @staticmethod
    def _related(
        query: sa.Select[Any],
        client: str,
        post_id: str,
        before: datetime | None,
        since_created: datetime | None,
        since_scanned: datetime | None,
    ) -> sa.Select[Any]:
        """Other posts, created before ``before``, created (or, without a time of their
        own, scanned) since ``since_created``, or scanned since ``since_scanned``;
        newest first."""
        query = query.where(decisions.c.client == client, decisions.c.post_id != post_id)
        if before is not None:
            query = query.where(
                sa.or_(decisions.c.created_at.is_(None), decisions.c.created_at < before)
            )
        if since_created is not None:
            query = query.where(
                sa.func.coalesce(decisions.c.created_at, decisions.c.scanned_at) >= since_created
            )
        if since_scanned is not None:
            query = query.where(decisions.c.scanned_at >= since_scanned)
        return query.order_by(decisions.c.scanned_at.desc(), decisions.c.id.desc())

    def related(
        self, post_id: str, *, client: str | None = None, limit: int = RELATED_LIMIT
    ) -> list[Related]:
        """Posts by the same author (of the same client), then posts sharing a media value
        (any signal type), newest first; none when ``post_id`` has no decision. Raises
        ``ConflictError`` when several clients hold ``post_id`` and ``client`` is not
        given."""
        with self.db.connect() as conn:
            try:
                me = self._one(conn, post_id, client)
            except NotFoundError:
                return []
            found: dict[str, Related] = {}
            if me.author is not None:
                rows = conn.execute(
                    sa.select(decisions)
                    .where(
                        decisions.c.client == me.client,
                        decisions.c.author == me.author,
                        decisions.c.id != me.id,
                    )
                    .order_by(decisions.c.first_scanned_at.desc(), decisions.c.id.desc())
                    .limit(limit)
                )
                for r in rows:
                    found[r.post_id] = Related(
                        r.post_id, r.verdict, r.review_state, r.author, "same author"
                    )
            mine = sa.select(media_signals.c.signal_type, media_signals.c.value).where(
                media_signals.c.decision == me.id
            )
            hashes = [(h.signal_type, h.value) for h in conn.execute(mine)]
            if hashes:
                # No DISTINCT over decisions.*: PostgreSQL cannot compare its JSON columns.
                sharing = sa.select(media_signals.c.decision).where(
                    sa.tuple_(media_signals.c.signal_type, media_signals.c.value).in_(hashes)
                )
                rows = conn.execute(
                    sa.select(decisions)
                    .where(decisions.c.id != me.id, decisions.c.id.in_(sharing))
                    .order_by(decisions.c.first_scanned_at.desc(), decisions.c.id.desc())
                    .limit(limit)
                )
                for r in rows:
                    if r.post_id in found:
                        found[r.post_id] = Related(
                            r.post_id,
                            r.verdict,
                            r.review_state,
                            r.author,
                            "same author, same media",
                        )
                    else:
                        found[r.post_id] = Related(
                            r.post_id, r.verdict, r.review_state, r.author, "same media"
                        )
        return list(found.values())[:limit]

    def removal_order(
        self,
        post_id: str,
        *,
        received_at: datetime,
        client: str | None = None,
        version: int | None = None,
        order: Mapping[str, Any] | None = None,
    ) -> datetime:
        """A removal order (EU 2021/784 Art. 3) arrived for a post: it must be acted on
        within one hour, so its review deadline becomes at most ``received_at`` + 1 h and it
        goes back to the queue; its newest version records when the order arrived
        (``removal_ordered_at``: that version needs its evidence, whatever the verdict).
        Returns the deadline. With ``version``, the order is for that version: a newer one
        stored meanwhile is a ``ConflictError`` and nothing is recorded. The webhooks are
        told (event ``order``, in the same transaction): the post as it stands and
        ``order``, the order's details (reference, authority, ...) with when it was
        received and the deadline. Raises ``NotFoundError``, or ``ConflictError`` when
        several clients hold ``post_id`` and ``client`` is not given."""
        due = received_at + timedelta(hours=1)
        # One statement, so concurrent orders cannot undo each other's earlier deadline.
        kept = sa.case(
            (
                sa.and_(decisions.c.deadline.is_not(None), decisions.c.deadline < due),
                decisions.c.deadline,
            ),
            else_=sa.literal(due, UTCDateTime),
        )
        with self.db.begin() as conn:
            row = self._one(conn, post_id, client)
            if version is not None and row.version != version:
                raise ConflictError(
                    f"post {post_id!r} of client {row.client!r} is at version {row.version} "
                    f"now, not {version}; nothing was recorded: send the order again"
                )
            update = decisions.update().where(decisions.c.id == row.id)
            if version is not None:
                update = update.where(decisions.c.version == version)
            changed = conn.execute(
                update.values(
                    deadline=kept, review_state="pending", removal_ordered_at=received_at
                ).returning(*decisions.c)
            ).first()
            if changed is None:
                raise NotFoundError(f"no decision for post {post_id!r}; submit the post first")
            deadline: datetime = changed.deadline
            emit(
                conn,
                Event.order,
                {
                    **event_payload(changed._mapping),
                    "order": {
                        **(order or {}),
                        "received_at": received_at.isoformat(),
                        "deadline": deadline.isoformat(),
                    },
                },
                now=received_at,
            )
        return deadline

    def media_sha256(
        self, post_id: str, *, client: str | None = None
    ) -> list[tuple[int, str, str | None]]:
        """Each media file of the stored decision (newest version) of ``client``'s
        ``post_id``, in order: its position, its path as written in the post and the
        SHA-256 of the bytes amber decided on (``None`` if none was stored). Raises as
        ``get`` does."""
        with self.db.connect() as conn:
            row = self._one(conn, post_id, client)
            query = (
                sa.select(post_media.c.position, post_media.c.path, media_signals.c.value)
                .select_from(
                    post_media.outerjoin(
                        media_signals,
                        sa.and_(
                            media_signals.c.decision == post_media.c.decision_id,
                            media_signals.c.position == post_media.c.position,
                            media_signals.c.signal_type == "sha256",
                            media_signals.c.variant == "original",
                        ),
                    )
                )
                .where(post_media.c.decision_id == row.id)
                .order_by(post_media.c.position)
            )
            return [(int(r.position), str(r.path), r.value) for r in conn.execute(query)]

    def count(self) -> int:
        """How many posts have a decision."""
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one())

    def find(
        self,
        *,
        verdict: Verdict | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        author: str | None = None,
        bank: str | None = None,
        clients: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[Decision]:
        """Stored decisions, the most recently scanned first: with ``verdict``, only that
        verdict; with ``since``/``until``, scanned at or after ``since`` and before
        ``until``; with ``author``, that author's posts; with ``bank``, those with a reason
        naming that bank; with ``clients``, only those clients' posts. At most ``limit``.

        Raises ``UserError`` for an unknown verdict, a ``limit`` below 1, or a time without
        a time zone.
        """
        if limit < 1:
            raise UserError(f"limit {limit} is too small; give 1 or more")
        query = sa.select(decisions).order_by(decisions.c.scanned_at.desc(), decisions.c.id.desc())
        if verdict is not None:
            try:
                query = query.where(decisions.c.verdict == Verdict(verdict).value)
            except ValueError:
                known = ", ".join(v.value for v in Verdict)
                raise UserError(f"verdict {verdict!r} is unknown; use one of {known}") from None
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise UserError(f"{name} {moment.isoformat()!r} has no time zone; add one (Z)")
        if since is not None:
            query = query.where(decisions.c.scanned_at >= since)
        if until is not None:
            query = query.where(decisions.c.scanned_at < until)
        if author is not None:
            query = query.where(decisions.c.author == author)
        if clients is not None:
            query = query.where(decisions.c.client.in_(list(clients)))
        if bank is None:
            with self.db.connect() as conn:
                return [_decision(row) for row in conn.execute(query.limit(limit)).all()]
        # Bank names are plain ASCII (banks.NAME_PATTERN), so a reason naming the bank
        # has it verbatim in the stored JSON on every database: narrow there, then check.
        text = sa.cast(decisions.c.reasons, sa.Text)
        query = query.where(text.contains(bank, autoescape=True))
        found: list[Decision] = []
        with self.db.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=limit)):
                if any(r.get("bank") == bank for r in row.reasons):
                    found.append(_decision(row))
                    if len(found) >= limit:
                        break
        return found


def _decision(row: Any) -> Decision:
    """A ``decisions`` row as a ``Decision``."""
    return Decision(
        post_id=row.post_id,
        verdict=Verdict(row.verdict),
        reasons=list(row.reasons),
        actions=list(row.actions),
        post=row.post,
        policy=row.policy,
        amber_version=row.amber_version,
        first_scanned_at=row.first_scanned_at,
        scanned_at=row.scanned_at,
        scan_count=row.scan_count,
        author=row.author,
        reply_to=row.reply_to,
        created_at=row.created_at,
        review_state=row.review_state,
        source=row.source,
        client=row.client,
        version=row.version,
        content_digest=row.content_digest,
        removal_ordered_at=row.removal_ordered_at,
    )


def _keep_reports(
    old: Sequence[Mapping[str, Any]], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``new`` reasons with the user reports of ``old`` that they lack (by report id): a
    report stays with its post whatever decides it next (``amber.reports``), even one
    filed by another process while this decision was being made."""
    have = {r["report"].get("id") for r in new if isinstance(r.get("report"), Mapping)}
    kept = [
        dict(r)
        for r in old
        if r.get("signal") == "user_report"
        and isinstance(r.get("report"), Mapping)
        and r["report"].get("id") not in have
    ]
    return [*new, *kept]


def _keep_found_by(
    old: Sequence[Mapping[str, Any]], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``new`` reasons, each saying how it was first found (``found_by``: a retro-hunt)
    when a reason of ``old`` for the same match (signal, bank, entry, media) said so: the
    same content decided again keeps that history."""
    found = {_match(r): r["found_by"] for r in old if r.get("found_by")}
    return [
        {**r, "found_by": found[_match(r)]} if "found_by" not in r and _match(r) in found else r
        for r in new
    ]


def _match(reason: Mapping[str, Any]) -> tuple[object, ...]:
    return tuple(reason.get(k) for k in ("signal", "bank", "entry", "media"))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _media_row(decision_id: int, position: int, path: str, hashes: MediaHashes) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "position": position,
        "path": path,
        "width": hashes.width,
        "height": hashes.height,
    }


def _signal_rows(decision_id: int, position: int, hashes: MediaHashes) -> list[dict[str, Any]]:
    """One ``media_signals`` row per distinct own value (``is_own``: variant ``"original"``,
    and a video's original frames)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for v in hashes.values:
        if not is_own(v.variant):
            continue
        rows.setdefault(
            (v.signal_type, v.variant, v.value),
            {
                "decision": decision_id,
                "position": position,
                "signal_type": v.signal_type,
                "value": v.value,
                "quality": v.quality,
                "variant": v.variant,
            },
        )
    return list(rows.values())
