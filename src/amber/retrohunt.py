"""Retro-hunt: when content is banked, the past posts it matches are decided again.

A post is matched against the banks when it arrives; content banked later (a reviewer
confirms a result photo into a bank, an import or an exchange brings hashes) would only
catch later posts. A retro-hunt takes the new bank entries and looks for them among the
posts amber decided within the retention window (``Engine.retention``), from their
stored signal values (``media_signals``: no media is read again):

- exact types (sha256, md5) through the database's ``(signal_type, value)`` index: the
  new values are looked up among the posts' values;
- near types (PDQ, and vPDQ's frames in PDQ's index) through a throwaway index of the new
  values, built with the type's own index (``SignalType.index``), that the posts' stored
  values of the window are searched against in batches, each within the entry's bank
  threshold.

Each post found (newest first, at most ``limit``) is decided again through the engine's
normal path (``Engine.decide_again``: today's banks and policy, evidence, the outbox,
statements), and stored only when the new decision has a reason naming one of the new
entries (marked ``found_by: "retro-hunt"``) and is at least as strong as the one it
replaces. A post whose stored decision already names the entries, one a reviewer holds
the lock on or whose review a reviewer settled (confirmed, rejected, escalated, reversed
on appeal: a person decided it), an allow bank's or a disabled bank's entries are left
alone, and counted; running a hunt again finds nothing new. Rotated or mirrored copies
are not found (only each file's own values are stored; the views a scan adds to match
them are not).

``amber retrohunt [--bank NAME] [--since DATE]`` runs one by hand; the engine runs one
after every bank write that adds entries (docs/retrohunt.md).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.decisions import SETTLED
from amber.errors import AmberError, UserError
from amber.policy.outcome import Outcome, Reason, Verdict
from amber.signals import SignalType
from amber.store.tables import (
    bank_entries,
    banks,
    decisions,
    entry_signals,
    media_signals,
    review_locks,
)
from amber.stored_posts import rebuild

if TYPE_CHECKING:
    from amber.engine import Engine

log = logging.getLogger("amber.retrohunt")

#: What a reason found by a retro-hunt says in ``found_by``.
FOUND_BY = "retro-hunt"
#: The most posts a hunt the engine runs by itself decides again (the rest is logged, with
#: the command that finishes it).
AUTO_LIMIT = 200
#: Past values searched at a time.
BATCH = 10_000
#: Exact values looked up in one query.
CHUNK = 500
#: The largest ``limit`` of a hunt.
MAX_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Hunted:
    """A past post decided again because it matches new bank entries."""

    post_id: str
    client: str
    before: str
    after: str
    entries: tuple[int, ...]
    banks: tuple[str, ...]
    actions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As ``amber retrohunt --format jsonl`` and ``POST /v1/retrohunt`` write it."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "verdict_before": self.before,
            "verdict": self.after,
            "actions": list(self.actions),
            "entries": list(self.entries),
            "banks": list(self.banks),
        }


@dataclass(frozen=True, slots=True)
class HuntReport:
    """What one retro-hunt did."""

    #: Bank entries hunted with, and the earliest decision time of the posts searched.
    entries: int
    posts_since: datetime
    #: Past posts whose stored values are near a new entry.
    candidates: int = 0
    decided: list[Hunted] = field(default_factory=list)
    #: Posts whose decision already names the entries they match.
    known: int = 0
    #: (post id, client, why) of posts decided again and not stored.
    kept: list[tuple[str, str, str]] = field(default_factory=list)
    #: (post id, client, what went wrong).
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    #: Posts held by a reviewer now, or whose review a reviewer settled: left to them.
    locked: int = 0
    settled: int = 0
    #: Posts over ``limit``, not looked at.
    left: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as the API and ``amber retrohunt --format json`` write it."""
        return {
            "entries": self.entries,
            "posts_since": self.posts_since.isoformat(),
            "candidates": self.candidates,
            "decided": [h.to_json() for h in self.decided],
            "known": self.known,
            "kept": [{"post_id": p, "client": c, "why": w} for p, c, w in self.kept],
            "failed": [{"post_id": p, "client": c, "error": e} for p, c, e in self.failed],
            "locked": self.locked,
            "settled": self.settled,
            "left": self.left,
        }


@dataclass(frozen=True, slots=True)
class _Entry:
    id: int
    bank: str
    threshold: int


def hunt(
    engine: Engine,
    *,
    bank: str | None = None,
    since: datetime | None = None,
    above: int | None = None,
    limit: int | None = None,
) -> HuntReport:
    """Decide again the past posts (decided within ``engine.retention``) that match bank
    entries: those of ``bank`` (default: every bank), added at or after ``since`` and with
    an id above ``above`` (when given); at most ``limit`` posts, newest first. The caller
    holds ``engine.write_lock``.

    Raises ``NotFoundError`` for an unknown bank, ``UserError`` for a time without a zone
    or a bad ``limit``.
    """
    if since is not None and since.utcoffset() is None:
        raise UserError(f"since {since.isoformat()!r} has no time zone; add one (Z)")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT
    ):
        raise UserError(f"limit {limit!r} is out of range; give 1 to {MAX_LIMIT}")
    if bank is not None:
        engine.banks.get(bank)
    now = engine.clock()
    cutoff = now - engine.retention
    query = _entries_query(bank=bank, since=since, above=above, now=now)
    if not _any_recent_media(engine, cutoff):
        # No post in the window to search: count the entries, read none of them (a list
        # of a million hashes imported on a new platform costs nothing more).
        with engine.db.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))
            return HuntReport(entries=int(count.scalar_one()), posts_since=cutoff)
    entries = _entries(engine, query)
    report = HuntReport(entries=len(entries), posts_since=cutoff)
    if not entries:
        return report
    engine.matcher.sync()
    found: dict[int, set[int]] = {}  # decision row id -> entry ids it matches
    for owner, kinds in engine.matcher.members.items():
        owner_type = engine.signals.get(owner)
        values = list(_entry_values(engine, entries, kinds))
        if not values:
            continue
        if owner_type.exact:
            _exact(engine, values, cutoff, found)
        else:
            _near(engine, owner_type, kinds, values, entries, cutoff, found)
    return _decide(engine, found, entries, report, limit, now)


def _any_recent_media(engine: Engine, cutoff: datetime) -> bool:
    """Has any post decided within the window a media value (a hash) to search?"""
    query = (
        sa.select(media_signals.c.decision)
        .join(decisions, decisions.c.id == media_signals.c.decision)
        .where(_recent(cutoff))
        .limit(1)
    )
    with engine.db.connect() as conn:
        return conn.execute(query).first() is not None


def _entries(engine: Engine, query: sa.Select[Any]) -> dict[int, _Entry]:
    """The entries ``query`` (``_entries_query``) finds, by id."""
    with engine.db.connect() as conn:
        return {
            int(r.id): _Entry(int(r.id), str(r.name), int(r.threshold))
            for r in conn.execute(query.execution_options(yield_per=BATCH))
        }


def _entries_query(
    *, bank: str | None, since: datetime | None, above: int | None, now: datetime
) -> sa.Select[Any]:
    """The entries to hunt with: matching ones (not an allow bank's, a disabled bank's,
    or disabled for now)."""
    query = (
        sa.select(bank_entries.c.id, banks.c.name, banks.c.threshold)
        .join(banks, banks.c.id == bank_entries.c.bank_id)
        .where(
            banks.c.action != "allow",
            banks.c.enabled_ratio > 0,
            sa.or_(bank_entries.c.disabled_until.is_(None), bank_entries.c.disabled_until <= now),
        )
    )
    if bank is not None:
        query = query.where(banks.c.name == bank)
    if since is not None:
        query = query.where(bank_entries.c.added_at >= since)
    if above is not None:
        query = query.where(bank_entries.c.id > above)
    return query


def _entry_values(
    engine: Engine, entries: dict[int, _Entry], kinds: Sequence[str]
) -> Iterator[tuple[int, str, str]]:
    """(entry id, signal type, value) of each value of ``kinds`` the entries hold that may
    match: not under its type's minimum quality (a value without one, as an imported hash
    often is, may: as the matcher treats bank values)."""
    ids = sorted(entries)
    with engine.db.connect() as conn:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            query = sa.select(
                entry_signals.c.entry_id,
                entry_signals.c.signal_type,
                entry_signals.c.value,
                entry_signals.c.quality,
            ).where(
                entry_signals.c.entry_id.in_(chunk),
                sa.cast(entry_signals.c.signal_type, sa.String).in_(list(kinds)),
            )
            for row in conn.execute(query):
                floor = engine.matcher.min_quality.get(row.signal_type)
                if floor is None or row.quality is None or row.quality >= floor:
                    yield int(row.entry_id), str(row.signal_type), str(row.value)


def _recent(cutoff: datetime) -> Any:
    """Posts decided within the retention window."""
    return decisions.c.first_scanned_at >= cutoff


def _exact(
    engine: Engine,
    values: list[tuple[int, str, str]],
    cutoff: datetime,
    found: dict[int, set[int]],
) -> None:
    """Past posts holding one of the exact ``values``, through the (type, value) index."""
    wanted: dict[tuple[str, str], set[int]] = {}
    for entry, kind, value in values:
        wanted.setdefault((kind, value), set()).add(entry)
    keys = sorted(wanted)
    with engine.db.connect() as conn:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            query = (
                sa.select(
                    media_signals.c.decision, media_signals.c.signal_type, media_signals.c.value
                )
                .join(decisions, decisions.c.id == media_signals.c.decision)
                .where(
                    sa.tuple_(media_signals.c.signal_type, media_signals.c.value).in_(chunk),
                    _recent(cutoff),
                )
            )
            for row in conn.execute(query):
                found.setdefault(int(row.decision), set()).update(
                    wanted[(str(row.signal_type), str(row.value))]
                )


def _near(
    engine: Engine,
    owner: SignalType,
    kinds: Sequence[str],
    values: list[tuple[int, str, str]],
    entries: dict[int, _Entry],
    cutoff: datetime,
    found: dict[int, set[int]],
) -> None:
    """Past posts with a value of ``kinds`` within a new value's bank threshold: the new
    values go into a throwaway index of ``owner``'s kind, the posts' values of the window
    are searched against it."""
    from amber.signals import SignalValue

    past = (
        sa.select(
            media_signals.c.decision,
            media_signals.c.signal_type,
            media_signals.c.value,
            media_signals.c.quality,
        )
        .join(decisions, decisions.c.id == media_signals.c.decision)
        .where(sa.cast(media_signals.c.signal_type, sa.String).in_(list(kinds)), _recent(cutoff))
    )
    with engine.db.connect() as conn:
        if conn.execute(past.limit(1)).first() is None:
            return  # nothing to search: no index built
    radius = {}
    for row, (entry, kind, _) in enumerate(values, start=1):
        radius[row] = engine.matcher.threshold(engine.signals.get(kind), entries[entry].threshold)
    widest = max(radius.values())
    with tempfile.TemporaryDirectory(prefix="amber-retrohunt-") as folder:
        index = owner.index(db=engine.db, folder=Path(folder) / owner.name)
        index.add_all([(list(radius), [value for _, _, value in values])])
        with engine.db.connect() as conn:
            result = conn.execute(past.execution_options(yield_per=BATCH))
            for rows in result.partitions():
                usable = [
                    r
                    for r in rows
                    if engine.matcher.strong_enough(SignalValue(r.signal_type, r.value, r.quality))
                ]
                if not usable:
                    continue
                hits = index.search([str(r.value) for r in usable], widest)
                for r, near in zip(usable, hits, strict=True):
                    for row, distance in near:
                        if distance <= radius[row]:
                            found.setdefault(int(r.decision), set()).add(values[row - 1][0])


def _decide(
    engine: Engine,
    found: dict[int, set[int]],
    entries: dict[int, _Entry],
    report: HuntReport,
    limit: int | None,
    now: datetime,
) -> HuntReport:
    """Decide again each post found (newest first, up to ``limit``)."""
    rows: list[Any] = []
    ids = sorted(found)
    with engine.db.connect() as conn:
        held = set(
            conn.execute(
                sa.select(review_locks.c.post_id).where(review_locks.c.expires_at > now)
            ).scalars()
        )
        for start in range(0, len(ids), CHUNK):
            rows.extend(
                conn.execute(
                    sa.select(
                        decisions.c.id,
                        decisions.c.client,
                        decisions.c.post_id,
                        decisions.c.reasons,
                        decisions.c.review_state,
                        decisions.c.first_scanned_at,
                    ).where(decisions.c.id.in_(ids[start : start + CHUNK]))
                ).all()
            )
    rows.sort(key=lambda r: (r.first_scanned_at, r.id), reverse=True)
    todo = []
    known = locked = settled = 0
    for row in rows:
        named = {r.get("entry") for r in row.reasons}
        if found[int(row.id)] <= named:
            known += 1
        elif row.post_id in held:
            locked += 1
        elif row.review_state in SETTLED:
            settled += 1
        else:
            todo.append(row)
    left = 0 if limit is None else max(0, len(todo) - limit)
    decided, kept, failed = [], [], []
    for row in todo[: len(todo) - left]:
        matched = frozenset(found[int(row.id)])
        try:
            stored = engine.decisions.get(row.post_id, client=row.client)
            before = stored.verdict
            again = engine.decide_again(
                rebuild(engine, stored),
                found_by=FOUND_BY,
                marked=partial(_names, matched),
                accept=partial(_refuse, before=before),
            )
        except AmberError as exc:
            failed.append((row.post_id, row.client, exc.message))
            continue
        if again.error is not None:
            failed.append((row.post_id, row.client, again.error))
        if again.kept is not None:
            kept.append((row.post_id, row.client, again.kept))
            continue
        if not again.saved:
            continue
        marked = [r for r in again.outcome.reasons if r.found_by == FOUND_BY]
        decided.append(
            Hunted(
                row.post_id,
                row.client,
                before.value,
                again.outcome.verdict.value,
                tuple(sorted({r.entry for r in marked if r.entry is not None})),
                tuple(sorted({r.bank for r in marked if r.bank is not None})),
                tuple(again.outcome.actions),
            )
        )
    return HuntReport(
        entries=report.entries,
        posts_since=report.posts_since,
        candidates=len(rows),
        decided=decided,
        known=known,
        kept=kept,
        failed=failed,
        locked=locked,
        settled=settled,
        left=left,
    )


def _names(entries: frozenset[int], reason: Reason) -> bool:
    """Does ``reason`` name one of ``entries``?"""
    return reason.entry in entries


def _refuse(outcome: Outcome, *, before: Verdict) -> str | None:
    """Why a retro-hunt does not store ``outcome`` over a decision of ``before``, or
    ``None`` to store it: it must name a new entry, and never weaken the decision."""
    if not any(r.found_by == FOUND_BY for r in outcome.reasons):
        return (
            "decided again, no new entry matches it under today's banks and policy "
            "(quality, a disabled entry, an allow bank, a video's share of frames)"
        )
    if outcome.verdict.rank < before.rank:
        return (
            f"its stored decision ({before.value}) is stronger than today's "
            f"({outcome.verdict.value}); kept"
        )
    return None


def summary(report: HuntReport) -> str:
    """One line on what a hunt did, for people (stderr, logs)."""
    parts = [
        f"retro-hunt with {report.entries} bank {'entry' if report.entries == 1 else 'entries'}: "
        f"{report.candidates} past {'post' if report.candidates == 1 else 'posts'} since "
        f"{report.posts_since.date().isoformat()} match, {len(report.decided)} decided again"
    ]
    if report.known:
        parts.append(f"{report.known} already decided with them")
    if report.kept:
        parts.append(f"{len(report.kept)} kept as they were")
    if report.locked:
        parts.append(f"{report.locked} held by a reviewer")
    if report.settled:
        parts.append(f"{report.settled} settled by a reviewer, left to them")
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    if report.left:
        parts.append(f"{report.left} not looked at yet (over the limit)")
    return "; ".join(parts)
