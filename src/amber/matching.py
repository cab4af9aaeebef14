"""Matching a post's signal values against every bank, one signal type at a time.

Each registered media type gives its own index (``SignalType.index``): exact types
(sha256, md5) are looked up in the database; PDQ goes through its persistent
multi-index-hashing index; a near-match type without an index of its own is compared one
by one. A type may put its values in another type's index (``SignalType.shares_index``:
vPDQ's frames go into PDQ's), so a photo finds a banked video's frame and a video's frame
a banked photo. A query video against a banked video (``SignalType.timed``) is judged as a
whole: the shares of frames matched on each side and the segments played in order
(``amber.timeline``). Each type's index is searched at the largest distance any bank allows it, and
each hit is then checked against its bank's threshold (``SignalType.bank_threshold``) or
the type's own (``default_threshold``), and against the type's minimum quality.

Several processes, on one machine or many, may share one database. Each keeps its
indexes current on its own: before matching, when its last look is older than
``sync_every`` seconds (and whenever this process changes a bank), it picks up what
another process on this machine wrote to a shared index folder and adds the rows the
database has above the highest each index holds. Bank writes commit in row order
(``banks``), so nothing below that mark can still appear. Removals need no message: a hit
is confirmed against the database, and a hit whose row is gone is dropped from the index
when it is found.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from amber import timeline
from amber.atomic_write import write_atomic
from amber.errors import UserError
from amber.index.layout import IndexCorruptError
from amber.index.signal import Hit, SignalIndex
from amber.signals import Registry, SignalType, SignalValue
from amber.signals.base import FrameRef, Geometry, Reads, frame_of
from amber.store.db import instance_id
from amber.store.tables import bank_entries, banks, entry_signals

log = logging.getLogger(__name__)
SYNC_BATCH = 100_000
#: ``Matcher.nearest`` compares every bank value of a type with a query its index found
#: too few entries for, when the type has at most this many bank values.
NEAREST_SCAN_LIMIT = 200_000
#: File in the index folder naming the database (its ``database_instance`` id) it mirrors.
DATABASE_MARKER = "database-instance"
#: How stale (seconds) a process's view of the banks may be when it matches.
SYNC_EVERY = 1.0
#: Entries a geometric type verifies at most for one media item (those with most votes),
#: and the votes an entry needs to be verified at all (the lowest ``min_inliers``).
SHORTLIST = 4
MIN_VOTES = 8
#: Bits of an entry id in a (media item, entry) key of ``Matcher._vote_first``.
_ENTRY_BITS = 40


@dataclass(frozen=True, slots=True)
class Match:
    """One bank entry that one media item matched, and how closely."""

    signal_type: str
    bank: str
    action: str
    label: str
    entry_id: int
    entry_source: str
    distance: int
    quality: int | None
    query_variant: str
    entry_variant: str
    media: int  # position of the media item in the post
    #: Videos: the times (seconds, first and last) of the frames that matched in the
    #: post's video and in the entry's; ``None`` on a side that is a still.
    query_span: tuple[float, float] | None = None
    entry_span: tuple[float, float] | None = None
    #: A video against a banked video: the shares (percent) of the post's frames that
    #: matched and of the entry's frames the post covers, and the segments played.
    query_percent: float | None = None
    entry_percent: float | None = None
    segments: tuple[timeline.Segment, ...] = ()
    #: The frames each share counts (those of quality enough to match), and all of them.
    query_frames: tuple[int, int] | None = None
    entry_frames: tuple[int, int] | None = None
    #: A geometric type (local features): the verified match, its inliers and regions.
    geometry: Geometry | None = None

    def region(self) -> dict[str, object] | None:
        """Where a local-feature match lies, for a decision's reason (``None`` for other
        types): ``inliers`` (keypoint pairs on one homography, of ``pairs``), ``post``
        (the box in the post's image where the banked photo lies) and ``entry`` (the
        part of the banked photo the post shows), as ``[x0, y0, x1, y1]`` fractions."""
        return None if self.geometry is None else self.geometry.to_json()

    def video(self) -> dict[str, object] | None:
        """Where the match lies in time, for a decision's reason (``None`` for stills):
        ``post`` and ``entry`` ([first, last] seconds matched), ``post_percent``,
        ``entry_percent``, the frames they count (``post_frames``, ``entry_frames``:
        ``[usable, all]``, usable being of quality enough to match) and ``segments``
        (``[{"post": [s, e], "entry": [s, e]}]``)."""
        out: dict[str, object] = {}
        for key, span in (("post", self.query_span), ("entry", self.entry_span)):
            if span is not None:
                out[key] = [round(span[0], 3), round(span[1], 3)]
        if self.query_percent is not None:
            out["post_percent"] = self.query_percent
        if self.entry_percent is not None:
            out["entry_percent"] = self.entry_percent
        if self.query_frames is not None:
            out["post_frames"] = list(self.query_frames)
        if self.entry_frames is not None:
            out["entry_frames"] = list(self.entry_frames)
        if self.segments:
            out["segments"] = [s.to_json() for s in self.segments]
        return out or None


@dataclass(frozen=True, slots=True)
class VideoVerdict:
    """A media video against a banked video it shares frames with: the match it would be
    (shares, segments, spans), whether it is one, and why in plain words."""

    match: Match
    matches: bool
    why: str
    #: The bank's ``video_percent``: the share of the entry's frames the video must cover.
    needed: int

    def to_json(self) -> dict[str, Any]:
        """Bank, entry, the ``video`` form of the match, and the verdict with its why."""
        m = self.match
        return {
            "media": m.media,
            "bank": m.bank,
            "label": m.label,
            "entry": m.entry_id,
            "entry_source": m.entry_source,
            "video": m.video(),
            "video_percent": self.needed,
            "matches": self.matches,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Nearest:
    """A bank entry close to a query value, whether or not it is close enough to match."""

    signal_type: str
    query: SignalValue
    media: int  # position of the media item in the post
    bank: str
    label: str
    entry_id: int
    entry_source: str
    entry_value: str
    entry_variant: str
    entry_quality: int | None
    distance: int
    #: The largest distance that matches this entry (its bank's or its type's).
    threshold: int
    #: True when the policy would see this as a match (distance and quality both pass).
    matches: bool


@dataclass(frozen=True, slots=True)
class IndexSummary:
    """What a matcher's indexes hold, for health checks: values held and the newest row."""

    hashes: int
    max_id: int

    def __len__(self) -> int:
        return self.hashes


@dataclass(frozen=True, slots=True)
class Tally:
    """A geometric type's hits counted per (media item, entry) before any row is read:
    ``ranked`` holds, per media item, the entries with at least ``MIN_VOTES`` votes, most
    first (ties by entry id, as ``Matcher._shortlist`` breaks them)."""

    #: Per hit: its (media item, entry) key, and whether its entry is known.
    keys: np.ndarray
    known: np.ndarray
    ranked: dict[int, list[int]]

    @classmethod
    def of(
        cls,
        hits: Sequence[Sequence[Hit]],
        positions: Sequence[int],
        values: Sequence[str],
        entries_of: Callable[[np.ndarray], np.ndarray],
        votes: Callable[[Sequence[tuple[str, int]]], int],
    ) -> Tally:
        """Count ``hits`` (per query value: rows and distances) of query ``values`` of
        media items ``positions``; ``entries_of`` gives rows' entries (-1: unknown),
        ``votes`` the type's ``SignalType.votes``."""
        sizes = [len(h) for h in hits]
        rows = np.fromiter((r for h in hits for r, _ in h), dtype=np.int64, count=sum(sizes))
        entries = entries_of(rows)
        position_of = np.repeat(np.asarray(positions, dtype=np.int64), sizes)
        keys = (position_of << _ENTRY_BITS) | np.maximum(entries, 0)
        known = entries >= 0
        # Pairs gathered only for keys with enough hits to make MIN_VOTES (votes never
        # exceed the pairs): most entries near a query image have one or two.
        distinct, counts = np.unique(keys[known], return_counts=True)
        pairs: dict[int, list[tuple[str, int]]] = {
            int(k): [] for k in distinct[counts >= MIN_VOTES]
        }
        flat = np.where(known, keys, -1).tolist()  # -1: unknown, never in ``pairs``
        n = 0
        for value, per_query in zip(values, hits, strict=True):
            for _, distance in per_query:
                if (group := pairs.get(flat[n])) is not None:
                    group.append((value, distance))
                n += 1
        scored: dict[int, list[tuple[int, int]]] = {}
        for key, group in pairs.items():
            if (count := votes(group)) >= MIN_VOTES:
                position, entry = key >> _ENTRY_BITS, key & ((1 << _ENTRY_BITS) - 1)
                scored.setdefault(position, []).append((-count, entry))
        ranked = {position: [e for _, e in sorted(c)] for position, c in scored.items()}
        return cls(keys, known, ranked)

    def keep(
        self, hits: Sequence[Sequence[Hit]], chosen: Sequence[tuple[int, int]]
    ) -> list[list[Hit]]:
        """``hits`` of the ``chosen`` (media item, entry) pairs and of unknown entries."""
        wanted = [(position << _ENTRY_BITS) | entry for position, entry in chosen]
        keep = (~self.known | np.isin(self.keys, wanted)).tolist()
        out: list[list[Hit]] = []
        at = 0
        for per_query in hits:
            flags = keep[at : at + len(per_query)]
            out.append([h for h, k in zip(per_query, flags, strict=True) if k])
            at += len(per_query)
        return out


class RowEntries:
    """The bank entry of each row a geometric type's index holds, kept beside the index as
    runs of consecutive rows of one entry (a banked photo's keypoints are written
    together): 24 bytes an entry, so that a search's hits are counted per entry and only
    the shortlisted entries' rows are read from the database (``Matcher._vote_first``).
    Rows it was never told of (added by ``Matcher.take``) are unknown (-1)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._first = np.empty(0, dtype=np.int64)
        self._last = np.empty(0, dtype=np.int64)
        self._entry = np.empty(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        """How many runs it holds."""
        self._settle()
        return len(self._first)

    def add(self, ids: Sequence[int], entries: Sequence[int]) -> None:
        """Rows ``ids`` (ascending) of entries ``entries``."""
        if not len(ids):
            return
        row = np.asarray(ids, dtype=np.int64)
        entry = np.asarray(entries, dtype=np.int64)
        breaks = np.flatnonzero((np.diff(entry) != 0) | (np.diff(row) <= 0)) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(row)]]) - 1
        self._pending.append((row[starts], row[ends], entry[starts]))

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The entry of each row id, -1 where unknown."""
        self._settle()
        if not len(self._first) or not len(ids):
            return np.full(len(ids), -1, dtype=np.int64)
        run = np.searchsorted(self._first, ids, side="right") - 1
        inside = (run >= 0) & (ids <= self._last[np.maximum(run, 0)])
        return np.where(inside, self._entry[np.maximum(run, 0)], -1)

    def _settle(self) -> None:
        if not self._pending:
            return
        first, last, entry = zip(*self._pending, strict=True)
        self._pending = []
        self._first = np.concatenate([self._first, *first])
        self._last = np.concatenate([self._last, *last])
        self._entry = np.concatenate([self._entry, *entry])
        if np.any(np.diff(self._first) < 0):  # batches out of order: sort the runs
            order = np.argsort(self._first, kind="stable")
            self._first, self._last = self._first[order], self._last[order]
            self._entry = self._entry[order]


class Matcher:
    """Finds bank entries for signal values, through each media type's own index.

    Indexes kept on disk live in ``index_dir/<signal type>``. ``min_quality`` overrides a
    type's ``min_quality`` (the engine passes the policy's).
    """

    def __init__(
        self,
        db: sa.Engine,
        signals: Registry[SignalType],
        index_dir: Path,
        *,
        min_quality: Mapping[str, int | None] | None = None,
        sync_every: float = SYNC_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.signals = signals
        self.index_dir = index_dir
        self.min_quality = {s.name: (min_quality or {}).get(s.name, s.min_quality) for s in signals}
        self.sync_every = sync_every
        self._monotonic = monotonic
        self._synced_at = -float("inf")
        index_dir.mkdir(parents=True, exist_ok=True)
        #: Each index by the name of the type that owns it, and the types whose values it
        #: holds (its own, and those that share it).
        self.members: dict[str, tuple[str, ...]] = {}
        media = [s for s in signals if s.reads is Reads.media]
        for s in media:
            owner = s.shares_index if s.shares_index in {m.name for m in media} else s.name
            self.members[owner] = (*self.members.get(owner, ()), s.name)
        self.indexes: dict[str, SignalIndex] = {
            owner: signals.get(owner).index(db=db, folder=index_dir / owner)
            for owner in self.members
        }
        #: Fallback types searched for every media item, not only those nothing else
        #: matched (the policy asks: ``SignalType.searched_always``).
        self.always: frozenset[str] = frozenset()
        #: For the indexes of geometric types, which entry each row belongs to.
        self.row_entries: dict[str, RowEntries] = {
            owner: RowEntries()
            for owner in self.members
            if all(signals.get(t).geometric for t in self.members[owner])
            and self.indexes[owner].mirrors_database
        }
        self._check_database()
        self.sync()

    @property
    def index(self) -> IndexSummary:
        """Values held by every index together, and the newest row any of them holds."""
        return IndexSummary(
            sum(len(i) for i in self.indexes.values()),
            max((i.max_id for i in self.indexes.values()), default=-1),
        )

    def _check_database(self) -> None:
        """Empty indexes built from another database (a schema created again under the
        same URL, a database file replaced): their rows would be the wrong ones, and rows
        below their marks would never be added."""
        database = instance_id(self.db)
        marker = self.index_dir / DATABASE_MARKER
        try:
            built_from = marker.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            built_from = None
        if built_from == database:
            return
        for name, index in self.indexes.items():
            if built_from is not None or len(index) or index.max_id >= 0:
                self._rebuild(
                    name,
                    f"{self.index_dir} was built from database {built_from or 'unknown'}, "
                    f"not {database}",
                )
        write_atomic(marker, database.encode() + b"\n")

    def _rebuild(self, name: str, why: object) -> None:
        """Start one index afresh (``sync`` then refills it from the database)."""
        log.warning("%s index unusable (%s); rebuilding it from the database", name, why)
        self.indexes[name].clear()
        if name in self.row_entries:
            self.row_entries[name].clear()

    def sync(self) -> int:
        """Take up another local process's index writes, then add the rows the database
        has and each index lacks; returns how many this call added. An index found
        damaged is rebuilt from the database."""
        self._synced_at = self._monotonic()
        added = 0
        for name, index in self.indexes.items():
            if not index.mirrors_database:
                continue
            try:
                added += self._sync(name, index)
            except IndexCorruptError as exc:
                self._rebuild(name, exc)
                added += self._sync(name, index)
        return added

    def warm_up(self) -> None:
        """Load the indexes' compiled search code now rather than on the first post."""
        for index in self.indexes.values():
            index.warm_up()

    def take(self, written: Mapping[str, Sequence[tuple[Sequence[int], Sequence[str]]]]) -> int:
        """``sync``, handed the rows a bulk import has just committed (by type: batches of
        row ids and values, ``amber.store.bulk.Written``) so that they are not read back
        from the database: an index that holds every row below them takes them as they
        are (one change), then syncs what came after; any other syncs as usual. Returns
        how many rows this call added."""
        self._synced_at = self._monotonic()
        added = 0
        for name, index in self.indexes.items():
            if not index.mirrors_database:
                continue
            batches = [b for t in self.members[name] for b in written.get(t, ()) if len(b[0])]
            try:
                index.refresh()
                if batches:
                    first = min(min(ids) for ids, _ in batches)
                    # Rows another process wrote before the import, read as usual.
                    added += index.add_all(self._rows_above(name, index.max_id, before=first))
                    if index.max_id < first:
                        added += index.add_all(batches)
                        self._note_entries(name, batches)
                added += self._sync(name, index)
            except IndexCorruptError as exc:
                self._rebuild(name, exc)
                added += self._sync(name, index)
        return added

    def _note_entries(self, name: str, batches: list[tuple[Sequence[int], Sequence[str]]]) -> None:
        """Record which entry each row of ``batches`` (handed to ``take``, without their
        entries) belongs to, read by id range from the database, for an index with
        ``row_entries``."""
        runs = self.row_entries.get(name)
        if runs is None:
            return
        low = min(min(ids) for ids, _ in batches)
        high = max(max(ids) for ids, _ in batches)
        query = (
            sa.select(entry_signals.c.id, entry_signals.c.entry_id)
            .where(
                entry_signals.c.id.between(low, high),
                sa.cast(entry_signals.c.signal_type, sa.String).in_(self.members[name]),
            )
            .order_by(entry_signals.c.id)
        )
        with self.db.connect() as conn:
            result = conn.execute(query.execution_options(yield_per=SYNC_BATCH))
            for rows in result.partitions():
                ids, entries = zip(*rows, strict=True)
                runs.add(ids, entries)

    def _sync(self, name: str, index: SignalIndex) -> int:
        index.refresh()
        return index.add_all(self._rows_above(name, index.max_id))

    def _rows_above(
        self, name: str, after: int, *, before: int | None = None
    ) -> Iterator[tuple[list[int], list[str]]]:
        """The rows of the types in index ``name`` above row ``after`` (and below row
        ``before``), in batches of ``SYNC_BATCH`` from one streamed query; all of them go
        into the index as one change (a bulk import's million rows build PDQ's index
        once)."""
        runs = self.row_entries.get(name)
        columns = [entry_signals.c.id, entry_signals.c.value]
        if runs is not None:
            columns.append(entry_signals.c.entry_id)
        query = (
            sa.select(*columns)
            .where(
                # Through the (signal_type, id) index: only the rows wanted are read (by
                # the primary key, every row above ``after`` of every type was: a PDQ
                # index behind five million keypoint rows took 0.4 s of each second).
                entry_signals.c.signal_type.in_(self.members[name]),
                entry_signals.c.id > after,
            )
            .order_by(entry_signals.c.id)
        )
        if before is not None:
            if before <= after + 1:
                return
            query = query.where(entry_signals.c.id < before)
        with self.db.connect() as conn:
            result = conn.execute(query.execution_options(yield_per=SYNC_BATCH))
            for rows in result.partitions():
                ids, values, *entries = zip(*rows, strict=True)
                if runs is not None:
                    runs.add(ids, entries[0])
                yield list(ids), list(values)

    def sync_if_stale(self) -> int:
        """``sync`` when the last one is older than ``sync_every`` seconds; else 0."""
        if self._monotonic() - self._synced_at < self.sync_every:
            return 0
        return self.sync()

    def forget(self, ids: list[int]) -> None:
        """Drop deleted entry rows from every index (they already no longer match)."""
        if ids:
            for index in self.indexes.values():
                index.remove(ids)

    def threshold(self, signal_type: SignalType, bank_threshold: int) -> int:
        """The largest distance at which a value of ``signal_type`` matches an entry of a
        bank whose threshold is ``bank_threshold``."""
        return bank_threshold if signal_type.bank_threshold else signal_type.default_threshold

    def strong_enough(self, value: SignalValue) -> bool:
        """May ``value`` match at all? (Its quality is at least its type's minimum.)"""
        floor = self.min_quality.get(value.signal_type)
        return floor is None or (value.quality or 0) >= floor

    def match(self, media: Sequence[Sequence[SignalValue]]) -> list[Match]:
        """Every bank entry matched by any media item's values, best distance per entry;
        a video against a banked video only when it matches as a whole (``videos``)."""
        self.sync_if_stale()
        found: list[Match] = []
        with self.db.connect() as conn:
            for second in (False, True):
                # Fallback types (local features) only look at media nothing else matched,
                # unless the policy asks for them everywhere (``always``).
                done = {m.media for m in found}
                hits = self._hits(conn, media, fallback=second, skip=done if second else set())
                for (position, type_name, _), group in self._shortlist(hits).items():
                    judged = self._judge(conn, media[position], type_name, position, group)
                    if isinstance(judged, VideoVerdict):
                        if judged.matches:
                            found.append(judged.match)
                    elif judged is not None:
                        found.append(judged)
        return sorted(found, key=lambda m: (m.media, m.distance, m.bank, m.entry_id))

    def videos(self, media: Sequence[Sequence[SignalValue]]) -> list[VideoVerdict]:
        """How each media video fares against each banked video one of its frames is near
        enough to: matched or not, and why (``amber explain``)."""
        self.sync_if_stale()
        out: list[VideoVerdict] = []
        with self.db.connect() as conn:
            for (position, type_name, _), group in self._hits(conn, media).items():
                judged = self._judge(conn, media[position], type_name, position, group)
                if isinstance(judged, VideoVerdict):
                    out.append(judged)
        return sorted(out, key=lambda v: (v.match.media, not v.matches, v.match.entry_id))

    def _hits(
        self,
        conn: sa.Connection,
        media: Sequence[Sequence[SignalValue]],
        *,
        fallback: bool = False,
        skip: set[int] | frozenset[int] = frozenset(),
    ) -> dict[tuple[int, str, int], list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]]]:
        """Every (media value, bank row, distance) within the row's threshold and of
        enough quality, by (media position, the row's type, entry), through the indexes of
        the fallback types or of the others; media at positions in ``skip`` are not
        searched."""
        hits: dict[
            tuple[int, str, int], list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]]
        ] = {}
        now = datetime.now(UTC)
        for queries, found, rows in self._search(
            conn, media, nearest=None, fallback=fallback, skip=skip
        ):
            for (position, value), per_query in zip(queries, found, strict=True):
                signal_type = self.signals.get(value.signal_type)
                for row_id, distance in per_query:
                    row = rows.get(row_id)
                    if row is None or distance > self.threshold(signal_type, row.threshold):
                        continue
                    if not _active(row, now):
                        continue
                    if _below(row.quality, self.min_quality.get(str(row.signal_type))):
                        continue
                    key = (position, str(row.signal_type), int(row.entry))
                    hits.setdefault(key, []).append((value, row, distance))
        return hits

    def _judge(
        self,
        conn: sa.Connection,
        item: Sequence[SignalValue],
        type_name: str,
        position: int,
        group: list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]],
    ) -> Match | VideoVerdict | None:
        """One media item against one entry, from the values of the item that hit it;
        ``None`` when a geometric type finds they do not show the same picture."""
        value, row, distance = min(group, key=lambda hit: hit[2])
        signal_type = self.signals.get(type_name)
        if signal_type.geometric:
            return self._judge_geometry(signal_type, position, group)
        timed = [
            (query_frame, entry_frame, d)
            for v, r, d in group
            if (query_frame := frame_of(v.variant)) is not None
            and (entry_frame := frame_of(str(r.variant))) is not None
        ]
        if signal_type.timed and self.signals.get(value.signal_type).timed and timed:
            return self._judge_video(conn, item, signal_type, position, row, timed)
        query_times = [f.timestamp for v, _, _ in group if (f := frame_of(v.variant))]
        entry_times = [f.timestamp for _, r, _ in group if (f := frame_of(str(r.variant)))]
        return self._to_match(
            row,
            distance,
            value.quality,
            value.variant,
            position,
            query_span=(min(query_times), max(query_times)) if query_times else None,
            entry_span=(min(entry_times), max(entry_times)) if entry_times else None,
        )

    def _judge_video(
        self,
        conn: sa.Connection,
        item: Sequence[SignalValue],
        signal_type: SignalType,
        position: int,
        row: sa.Row[tuple[object, ...]],
        pairs: list[tuple[FrameRef, FrameRef, int]],
    ) -> VideoVerdict:
        """A query video against a banked video: a match when the query covers the bank's
        ``video_percent`` of the banked frames or plays a segment of it
        (``amber.timeline``)."""
        floor = self.min_quality.get(signal_type.name)
        every = {
            f.timestamp: v.quality
            for v in item
            if v.signal_type == signal_type.name
            and (f := frame_of(v.variant)) is not None
            and f.view == "original"
        }
        query_times = sorted(t for t, quality in every.items() if not _below(quality, floor))
        entry_every = self._entry_times(conn, int(row.entry), signal_type.name)
        entry_times = [t for t, quality in entry_every if not _below(quality, floor)]
        matched_query = {q.timestamp for q, _, _ in pairs}
        matched_entry = {e.timestamp for _, e, _ in pairs}
        gaps = [b - a for a, b in itertools.pairwise(query_times)]
        cover = 0.75 * statistics.median(gaps) if gaps else 0.0
        query_percent = timeline.percent(len(matched_query & set(query_times)), len(query_times))
        entry_percent = timeline.percent(
            timeline.covered(entry_times, matched_entry, cover), len(entry_times)
        )
        played = tuple(
            timeline.segments(
                ((q.timestamp, e.timestamp) for q, e, _ in pairs),
                unmatched=set(query_times) - matched_query,
            )
        )
        needed = int(row.video_percent)
        if played:
            why = f"plays {len(played)} segment(s) of it in order"
        elif entry_percent >= needed:
            why = f"covers {entry_percent:g}% of its frames, the bank asks {needed}%"
        else:
            why = (
                f"covers {entry_percent:g}% of its frames, under the bank's {needed}%, and plays "
                f"no segment ({timeline.SEGMENT_FRAMES} frames in order over "
                f"{timeline.SEGMENT_SECONDS:g} s or more)"
            )
        best: dict[float, tuple[FrameRef, FrameRef, int]] = {}  # per query frame time
        for q, e, d in pairs:
            if q.timestamp not in best or d < best[q.timestamp][2]:
                best[q.timestamp] = (q, e, d)
        closest = min(best.values(), key=lambda hit: hit[2])
        match = self._to_match(
            row,
            int(statistics.median_low(d for _, _, d in best.values())),
            None,
            closest[0].view,
            position,
            entry_variant=closest[1].view,
            query_span=(min(matched_query), max(matched_query)),
            entry_span=(min(matched_entry), max(matched_entry)),
            query_percent=query_percent,
            entry_percent=entry_percent,
            segments=played,
            query_frames=(len(query_times), len(every)),
            entry_frames=(len(entry_times), len(entry_every)),
        )
        return VideoVerdict(match, bool(played) or entry_percent >= needed, why, needed)

    def _shortlist(
        self,
        hits: dict[tuple[int, str, int], list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]]],
    ) -> dict[tuple[int, str, int], list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]]]:
        """``hits`` less the entries a geometric type need not verify: of each media
        item's, only the ``SHORTLIST`` with most votes (``SignalType.votes``) and at least
        ``MIN_VOTES``. A query's keypoints have near neighbours in every banked photo by
        chance; verifying each of them (a RANSAC fit) cost a second a query image against
        24 banked photos."""
        kept: dict[tuple[int, str], list[tuple[int, tuple[int, str, int]]]] = {}
        for key, group in hits.items():
            signal_type = self.signals.get(key[1])
            if not signal_type.geometric:
                continue
            votes = signal_type.votes([(v.value, d) for v, _, d in group])
            if votes >= MIN_VOTES:
                kept.setdefault((key[0], key[1]), []).append((votes, key))
        chosen = {
            key
            for ranked in kept.values()
            for _, key in sorted(ranked, key=lambda hit: (-hit[0], hit[1]))[:SHORTLIST]
        }
        return {
            key: group
            for key, group in hits.items()
            if not self.signals.get(key[1]).geometric or key in chosen
        }

    def _judge_geometry(
        self,
        signal_type: SignalType,
        position: int,
        group: list[tuple[SignalValue, sa.Row[tuple[object, ...]], int]],
    ) -> Match | None:
        """A media item's keypoints against a banked photo's: the type's ``verify`` for
        each view of the item (as it is, mirrored), at the bank's ``min_inliers``; the
        view with most inliers."""
        row = group[0][1]
        views: dict[str, list[tuple[str, str, int]]] = {}
        for value, entry_row, distance in group:
            views.setdefault(value.variant, []).append(
                (value.value, str(entry_row.value), distance)
            )
        best: tuple[str, Geometry] | None = None
        for view, pairs in views.items():
            geometry = signal_type.verify(
                pairs, min_inliers=int(row.min_inliers), mirrored=view == "mirror"
            )
            if geometry is not None and (best is None or geometry.inliers > best[1].inliers):
                best = (view, geometry)
        if best is None:
            return None
        view, geometry = best
        return self._to_match(
            row,
            geometry.distance,
            None,
            view,
            position,
            entry_variant="original",
            geometry=geometry,
        )

    def _entry_times(
        self, conn: sa.Connection, entry: int, type_name: str
    ) -> list[tuple[float, int | None]]:
        """The times and qualities of a banked video's own frames, in time order."""
        rows = conn.execute(
            sa.select(entry_signals.c.variant, entry_signals.c.quality).where(
                entry_signals.c.entry_id == entry, entry_signals.c.signal_type == type_name
            )
        )
        own = {
            f.timestamp: r.quality
            for r in rows
            if (f := frame_of(str(r.variant))) is not None and f.view == "original"
        }
        return sorted(own.items())

    def nearest(self, media: Sequence[Sequence[SignalValue]], k: int = 3) -> list[Nearest]:
        """For each media value, the ``k`` closest bank entries of its type (and of the
        types sharing its index), with their distances, even when none is close enough to
        match (``amber explain``).

        Values too weak to match are looked up too (``matches`` is then False). Exact types
        give only identical values. Beyond what an index can reach (PDQ's: 63 bits) every
        bank value of the type is compared, up to ``NEAREST_SCAN_LIMIT`` of them. A video's
        frames are each a value here; whether the video matches as a whole is ``match``'s
        to say. Raises ``UserError`` for ``k`` below 1.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"k {k!r} is not a whole number >= 1")
        self.sync_if_stale()
        out: list[Nearest] = []
        now = datetime.now(UTC)
        with self.db.connect() as conn:
            # Keypoints (geometric types) are judged together, not one by one: not here.
            for queries, hits, rows in self._search(conn, media, nearest=k, fallback=False):
                for (position, value), per_query in zip(queries, hits, strict=True):
                    signal_type = self.signals.get(value.signal_type)
                    for row_id, distance in per_query:
                        row = rows.get(row_id)
                        if row is None:
                            continue
                        limit = self.threshold(signal_type, row.threshold)
                        weak_row = _below(row.quality, self.min_quality.get(str(row.signal_type)))
                        out.append(
                            Nearest(
                                signal_type=signal_type.name,
                                query=value,
                                media=position,
                                bank=str(row.name),
                                label=str(row.entry_label or row.label),
                                entry_id=int(row.entry),
                                entry_source=str(row.source),
                                entry_value=str(row.value),
                                entry_variant=str(row.variant),
                                entry_quality=row.quality,
                                distance=distance,
                                threshold=limit,
                                matches=distance <= limit
                                and self.strong_enough(value)
                                and not weak_row
                                and _active(row, now),
                            )
                        )
        return sorted(out, key=lambda n: (n.media, n.signal_type, n.distance, n.entry_id))

    def _search(
        self,
        conn: sa.Connection,
        media: Sequence[Sequence[SignalValue]],
        *,
        nearest: int | None,
        fallback: bool | None = None,
        skip: set[int] | frozenset[int] = frozenset(),
    ) -> Iterator[
        tuple[
            list[tuple[int, SignalValue]],
            list[list[Hit]],
            dict[int, sa.Row[tuple[object, ...]]],
        ]
    ]:
        """Per index: its queries (the values of the types it holds), each query's hits
        and the hit rows (hits whose rows are gone are dropped from the indexes). Without
        ``nearest``, only values strong enough to match are searched, as far as any of
        its types can match. ``fallback``: only the indexes of fallback types (True) or of
        the others (False); ``skip``: media positions not searched, but by the types of
        ``always``."""
        for owner, index in self.indexes.items():
            if fallback is not None and self.signals.get(owner).fallback is not fallback:
                continue
            members = self.members[owner]
            skipped = frozenset() if owner in self.always else skip
            queries = [
                (position, v)
                for position, values in enumerate(media)
                if position not in skipped
                for v in values
                if v.signal_type in members and (nearest is not None or self.strong_enough(v))
            ]
            if not queries:
                continue
            wanted = [v.value for _, v in queries]
            if nearest is not None:
                hits = index.nearest(wanted, nearest)
                if not self.signals.get(owner).exact and any(len(h) < nearest for h in hits):
                    hits = self._beyond_reach(conn, owner, wanted, hits, nearest)
            else:
                radius = max(self._radius(conn, self.signals.get(name)) for name in members)
                hits = index.search(wanted, radius)
                if self._votes_first(owner):
                    hits = self._vote_first(conn, owner, queries, hits)
            ids = {row_id for per_query in hits for row_id, _ in per_query}
            if not ids:
                continue
            rows = {
                int(r.id): r
                for r in conn.execute(self._entry_query().where(entry_signals.c.id.in_(ids)))
            }
            if gone := ids - rows.keys():  # deleted by some process since it was indexed
                self.forget(sorted(gone))
            yield queries, hits, rows

    def _votes_first(self, owner: str) -> bool:
        """May the hits of index ``owner`` be shortlisted before their rows are read? Yes
        for a geometric type whose rows all match within its own threshold and have no
        quality floor: a row's hits then count for its entry exactly as ``_hits`` would
        count them, and only whether the entry is active can still drop them."""
        if owner not in self.row_entries:
            return False
        return all(
            not self.signals.get(name).bank_threshold and self.min_quality.get(name) is None
            for name in self.members[owner]
        )

    def _vote_first(
        self,
        conn: sa.Connection,
        owner: str,
        queries: list[tuple[int, SignalValue]],
        hits: list[list[Hit]],
    ) -> list[list[Hit]]:
        """``hits`` of a geometric type's index less those of entries ``_shortlist``
        would not keep: per media item, the ``SHORTLIST`` active entries with most votes
        (at least ``MIN_VOTES``). Entries come from ``row_entries``, not from the rows, so
        that a query image's thousands of chance neighbours (at 100,000 banked photos,
        about 3,700 rows of 1,900 photos) are not read from the database; rows of unknown
        entry are kept. The same entries are verified as when every row was read."""
        count = Tally.of(
            hits,
            [position for position, _ in queries],
            [value.value for _, value in queries],
            self.row_entries[owner].lookup,
            self.signals.get(owner).votes,
        )
        chosen: list[tuple[int, int]] = []
        for position, candidates in count.ranked.items():
            taken = 0
            for start in range(0, len(candidates), 2 * SHORTLIST):
                batch = candidates[start : start + 2 * SHORTLIST]
                active = self._active_entries(conn, batch)
                for entry in batch:
                    if entry in active and taken < SHORTLIST:
                        chosen.append((position, entry))
                        taken += 1
                if taken >= SHORTLIST:
                    break
        return count.keep(hits, chosen)

    def _active_entries(self, conn: sa.Connection, ids: list[int]) -> set[int]:
        """The entries of ``ids`` that may match now (``_active``)."""
        now = datetime.now(UTC)
        found = conn.execute(
            sa.select(
                bank_entries.c.id.label("entry"),
                bank_entries.c.disabled_until,
                banks.c.enabled_ratio,
            )
            .join(banks, banks.c.id == bank_entries.c.bank_id)
            .where(bank_entries.c.id.in_(ids))
        )
        return {int(r.entry) for r in found if _active(r, now)}

    def _beyond_reach(
        self,
        conn: sa.Connection,
        owner: str,
        wanted: list[str],
        hits: list[list[Hit]],
        k: int,
    ) -> list[list[Hit]]:
        """``k`` nearest rows by comparing every bank value the index of ``owner`` holds,
        for queries the index found fewer for (an index searches only so far: PDQ's up to
        63 bits), when it holds at most ``NEAREST_SCAN_LIMIT`` bank values; else ``hits``
        as they are."""
        members = self.members[owner]
        signal_type = self.signals.get(owner)
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(entry_signals)
            .where(entry_signals.c.signal_type.in_(members))
        ).scalar_one()
        if not count or count > NEAREST_SCAN_LIMIT:
            return hits
        held = conn.execute(
            sa.select(entry_signals.c.id, entry_signals.c.value).where(
                entry_signals.c.signal_type.in_(members)
            )
        ).all()
        out = []
        for value, found in zip(wanted, hits, strict=True):
            if len(found) >= k:
                out.append(found)
                continue
            every = [(int(r.id), signal_type.distance(value, str(r.value))) for r in held]
            out.append(heapq.nsmallest(k, every, key=lambda hit: (hit[1], hit[0])))
        return out

    def _radius(self, conn: sa.Connection, signal_type: SignalType) -> int:
        """How far to search: the largest distance any bank lets ``signal_type`` match."""
        if not signal_type.bank_threshold:
            return signal_type.default_threshold
        return int(conn.execute(sa.select(sa.func.max(banks.c.threshold))).scalar() or 0)

    def _entry_query(self) -> sa.Select[tuple[object, ...]]:
        return (
            sa.select(
                entry_signals.c.id,
                entry_signals.c.signal_type,
                entry_signals.c.value,
                entry_signals.c.quality,
                entry_signals.c.variant,
                bank_entries.c.id.label("entry"),
                bank_entries.c.source,
                bank_entries.c.label.label("entry_label"),
                banks.c.name,
                banks.c.label,
                banks.c.action,
                banks.c.threshold,
                banks.c.video_percent,
                banks.c.min_inliers,
                banks.c.enabled_ratio,
                bank_entries.c.disabled_until,
            )
            .join(bank_entries, bank_entries.c.id == entry_signals.c.entry_id)
            .join(banks, banks.c.id == bank_entries.c.bank_id)
        )

    @staticmethod
    def _to_match(
        row: sa.Row[tuple[object, ...]],
        distance: int,
        quality: int | None,
        variant: str,
        position: int,
        *,
        entry_variant: str | None = None,
        query_span: tuple[float, float] | None = None,
        entry_span: tuple[float, float] | None = None,
        query_percent: float | None = None,
        entry_percent: float | None = None,
        segments: tuple[timeline.Segment, ...] = (),
        query_frames: tuple[int, int] | None = None,
        entry_frames: tuple[int, int] | None = None,
        geometry: Geometry | None = None,
    ) -> Match:
        return Match(
            signal_type=str(row.signal_type),
            bank=str(row.name),
            action=str(row.action),
            label=str(row.entry_label or row.label),
            entry_id=int(row.entry),
            entry_source=str(row.source),
            distance=distance,
            quality=quality,
            query_variant=variant,
            entry_variant=str(row.variant) if entry_variant is None else entry_variant,
            media=position,
            query_span=query_span,
            entry_span=entry_span,
            query_percent=query_percent,
            entry_percent=entry_percent,
            segments=segments,
            query_frames=query_frames,
            entry_frames=entry_frames,
            geometry=geometry,
        )


def enabled_share(entry_id: int) -> float:
    """Where an entry falls in [0, 1): a bank with ``enabled_ratio`` r matches the entries
    whose share is below r (the same ones every time, spread evenly over the ids)."""
    return (entry_id * 2654435761 % 2**32) / 2**32  # Knuth's multiplicative hash


def _active(row: Any, now: datetime) -> bool:
    """May a bank row match now: its entry not disabled, its bank enabled for it? (Any
    row with ``entry``, ``disabled_until`` and ``enabled_ratio``.)"""
    until = row.disabled_until
    if until is not None and until > now:
        return False
    return enabled_share(int(row.entry)) < float(row.enabled_ratio)


def _below(quality: int | None, floor: int | None) -> bool:
    """Is a bank entry's ``quality`` under the type's minimum ``floor``? (Entries without
    a quality, and types without a minimum, never are.)"""
    return floor is not None and quality is not None and quality < floor
