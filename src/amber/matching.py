"""Matching a post's signal values against every bank, one signal type at a time.

Each registered media type gives its own index (``SignalType.index``): exact types
(sha256, md5) are looked up in the database; PDQ goes through its persistent
multi-index-hashing index; a near-match type without an index of its own is compared one
by one. Each type's index is searched at the largest distance any bank allows it, and
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
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from amber.atomic_write import write_atomic
from amber.errors import UserError
from amber.index.layout import IndexCorruptError
from amber.index.signal import Hit, SignalIndex
from amber.signals import Registry, SignalType, SignalValue
from amber.signals.base import Reads
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
        self.indexes: dict[str, SignalIndex] = {
            s.name: s.index(db=db, folder=index_dir / s.name)
            for s in signals
            if s.reads is Reads.media
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

    def _sync(self, name: str, index: SignalIndex) -> int:
        index.refresh()
        added = 0
        while True:
            query = (
                sa.select(entry_signals.c.id, entry_signals.c.value)
                .where(entry_signals.c.signal_type == name, entry_signals.c.id > index.max_id)
                .order_by(entry_signals.c.id)
                .limit(SYNC_BATCH)
            )
            with self.db.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return added
            index.add([int(r.id) for r in rows], [str(r.value) for r in rows])
            added += len(rows)

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
        """Every bank entry matched by any media item's values, best distance per entry."""
        self.sync_if_stale()
        found: list[Match] = []
        with self.db.connect() as conn:
            for signal_type, queries, hits, rows in self._search(conn, media, nearest=None):
                floor = self.min_quality[signal_type.name]
                for (position, value), per_query in zip(queries, hits, strict=True):
                    for row_id, distance in per_query:
                        row = rows.get(row_id)
                        if row is None or distance > self.threshold(signal_type, row.threshold):
                            continue
                        if _below(row.quality, floor):
                            continue
                        found.append(
                            self._to_match(row, distance, value.quality, value.variant, position)
                        )
        best: dict[tuple[int, str, int], Match] = {}
        for m in found:
            key = (m.media, m.signal_type, m.entry_id)
            if key not in best or m.distance < best[key].distance:
                best[key] = m
        return sorted(best.values(), key=lambda m: (m.media, m.distance, m.bank, m.entry_id))

    def nearest(self, media: Sequence[Sequence[SignalValue]], k: int = 3) -> list[Nearest]:
        """For each media value, the ``k`` closest bank entries of its type, with their
        distances, even when none is close enough to match (``amber explain``).

        Values too weak to match are looked up too (``matches`` is then False). Exact types
        give only identical values. Beyond what an index can reach (PDQ's: 63 bits) every
        bank value of the type is compared, up to ``NEAREST_SCAN_LIMIT`` of them. Raises
        ``UserError`` for ``k`` below 1.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"k {k!r} is not a whole number >= 1")
        self.sync_if_stale()
        out: list[Nearest] = []
        with self.db.connect() as conn:
            for signal_type, queries, hits, rows in self._search(conn, media, nearest=k):
                floor = self.min_quality[signal_type.name]
                for (position, value), per_query in zip(queries, hits, strict=True):
                    for row_id, distance in per_query:
                        row = rows.get(row_id)
                        if row is None:
                            continue
                        limit = self.threshold(signal_type, row.threshold)
                        weak_row = _below(row.quality, floor)
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
                                and not weak_row,
                            )
                        )
        return sorted(out, key=lambda n: (n.media, n.signal_type, n.distance, n.entry_id))

    def _search(
        self, conn: sa.Connection, media: Sequence[Sequence[SignalValue]], *, nearest: int | None
    ) -> Iterator[
        tuple[
            SignalType,
            list[tuple[int, SignalValue]],
            list[list[Hit]],
            dict[int, sa.Row[tuple[object, ...]]],
        ]
    ]:
        """Per media signal type: its queries, each query's hits and the hit rows (hits
        whose rows are gone are dropped from the indexes). Without ``nearest``, only values
        strong enough to match are searched, as far as the type can match."""
        for name, index in self.indexes.items():
            signal_type = self.signals.get(name)
            queries = [
                (position, v)
                for position, values in enumerate(media)
                for v in values
                if v.signal_type == name and (nearest is not None or self.strong_enough(v))
            ]
            if not queries:
                continue
            wanted = [v.value for _, v in queries]
            if nearest is not None:
                hits = index.nearest(wanted, nearest)
                if not signal_type.exact and any(len(h) < nearest for h in hits):
                    hits = self._beyond_reach(conn, signal_type, wanted, hits, nearest)
            else:
                hits = index.search(wanted, self._radius(conn, signal_type))
            ids = {row_id for per_query in hits for row_id, _ in per_query}
            if not ids:
                continue
            rows = {
                int(r.id): r
                for r in conn.execute(self._entry_query().where(entry_signals.c.id.in_(ids)))
            }
            if gone := ids - rows.keys():  # deleted by some process since it was indexed
                self.forget(sorted(gone))
            yield signal_type, queries, hits, rows

    def _beyond_reach(
        self,
        conn: sa.Connection,
        signal_type: SignalType,
        wanted: list[str],
        hits: list[list[Hit]],
        k: int,
    ) -> list[list[Hit]]:
        """``k`` nearest rows by comparing every bank value of the type, for queries the
        index found fewer for (an index searches only so far: PDQ's up to 63 bits), when
        the type has at most ``NEAREST_SCAN_LIMIT`` bank values; else ``hits`` as they are."""
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(entry_signals)
            .where(entry_signals.c.signal_type == signal_type.name)
        ).scalar_one()
        if not count or count > NEAREST_SCAN_LIMIT:
            return hits
        held = conn.execute(
            sa.select(entry_signals.c.id, entry_signals.c.value).where(
                entry_signals.c.signal_type == signal_type.name
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
            entry_variant=str(row.variant),
            media=position,
        )


def _below(quality: int | None, floor: int | None) -> bool:
    """Is a bank entry's ``quality`` under the type's minimum ``floor``? (Entries without
    a quality, and types without a minimum, never are.)"""
    return floor is not None and quality is not None and quality < floor
