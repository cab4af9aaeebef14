"""Matching a post's signal values against every bank.

Exact signal types (sha256, md5) are looked up in the database. PDQ goes through the
persistent multi-index-hashing index, searched at the largest bank threshold and then
filtered by each bank's own threshold.

Several processes, on one machine or many, may share one database. Each keeps its index
current on its own: before matching, when its last look is older than ``sync_every``
seconds (and whenever this process changes a bank), it picks up what another process on
this machine wrote to the shared index folder and adds the PDQ rows the database has
above the highest it indexed. Bank writes commit in row order (``banks``), so nothing
below that mark can still appear. Removals need no message: a hit is confirmed against the
database, and a hit whose row is gone is dropped from the index when it is found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from amber.durable import write_atomic
from amber.index.mih import IndexCorruptError, PdqIndex
from amber.signals import Registry, SignalType, SignalValue
from amber.signals.pdq import PdqSignal, from_hex
from amber.store.db import instance_id
from amber.store.tables import bank_entries, banks, entry_signals

log = logging.getLogger(__name__)
SYNC_BATCH = 100_000
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


class Matcher:
    """Finds bank entries for signal values. Keeps its PDQ index in ``index_dir``."""

    def __init__(
        self,
        db: sa.Engine,
        signals: Registry[SignalType],
        index_dir: Path,
        *,
        min_quality: int = PdqSignal.MIN_QUALITY,
        sync_every: float = SYNC_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.signals = signals
        self.index_dir = index_dir
        self.min_quality = min_quality
        self.sync_every = sync_every
        self._monotonic = monotonic
        self._synced_at = -float("inf")
        try:
            self.index = PdqIndex.open(index_dir)
        except IndexCorruptError as exc:
            self._rebuild(exc)
        self._check_database()
        self.sync()

    def _check_database(self) -> None:
        """Rebuild an index that was built from another database (a schema created again
        under the same URL, a database file replaced): its rows would be the wrong ones,
        and rows below its mark would never be added."""
        database = instance_id(self.db)
        marker = self.index_dir / DATABASE_MARKER
        try:
            built_from = marker.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            built_from = None
        if built_from == database:
            return
        if built_from is not None or len(self.index) or self.index.max_id >= 0:
            self._rebuild(
                f"{self.index_dir} was built from database {built_from or 'unknown'}, "
                f"not {database}"
            )
        write_atomic(marker, database.encode() + b"\n")

    def _rebuild(self, why: object) -> None:
        """Start the index afresh (``sync`` then refills it from the database)."""
        log.warning("PDQ index unusable (%s); rebuilding it from the database", why)
        self.index = PdqIndex.rebuild(
            self.index_dir, np.empty(0, np.int64), np.empty((0, 32), np.uint8)
        )

    def sync(self) -> int:
        """Take up another local process's index writes, then add the PDQ rows the
        database has and the index lacks; returns how many this call added. An index
        folder found damaged is rebuilt from the database."""
        try:
            return self._sync()
        except IndexCorruptError as exc:
            self._rebuild(exc)
            return self._sync()

    def warm_up(self) -> None:
        """Load the index's compiled search code now rather than on the first post."""
        self.index.search(np.zeros((1, 32), np.uint8), PdqSignal.DEFAULT_THRESHOLD)

    def _sync(self) -> int:
        self._synced_at = self._monotonic()
        self.index.refresh()
        added = 0
        while True:
            query = (
                sa.select(entry_signals.c.id, entry_signals.c.value)
                .where(entry_signals.c.signal_type == "pdq", entry_signals.c.id > self.index.max_id)
                .order_by(entry_signals.c.id)
                .limit(SYNC_BATCH)
            )
            with self.db.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return added
            ids = np.fromiter((r.id for r in rows), np.int64, len(rows))
            hashes = np.frombuffer(b"".join(from_hex(r.value) for r in rows), np.uint8)
            self.index.add(ids, hashes.reshape(-1, 32))
            added += len(rows)

    def sync_if_stale(self) -> int:
        """``sync`` when the last one is older than ``sync_every`` seconds; else 0."""
        if self._monotonic() - self._synced_at < self.sync_every:
            return 0
        return self.sync()

    def forget(self, ids: list[int]) -> None:
        """Drop deleted entry rows from the index (they already no longer match)."""
        if ids:
            self.index.remove(np.asarray(ids, dtype=np.int64))

    def match(self, media: Sequence[Sequence[SignalValue]]) -> list[Match]:
        """Every bank entry matched by any media item's values, best distance per entry."""
        self.sync_if_stale()
        with self.db.connect() as conn:
            found = self._match_exact(conn, media) + self._match_pdq(conn, media)
        best: dict[tuple[int, str, int], Match] = {}
        for m in found:
            key = (m.media, m.signal_type, m.entry_id)
            if key not in best or m.distance < best[key].distance:
                best[key] = m
        return sorted(best.values(), key=lambda m: (m.media, m.distance, m.bank, m.entry_id))

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

    def _match_exact(
        self, conn: sa.Connection, media: Sequence[Sequence[SignalValue]]
    ) -> list[Match]:
        wanted: dict[tuple[str, str], list[SignalValue]] = {}
        positions: dict[tuple[str, str], list[int]] = {}
        for position, values in enumerate(media):
            for v in values:
                if self.signals.get(v.signal_type).exact:
                    wanted.setdefault((v.signal_type, v.value), []).append(v)
                    positions.setdefault((v.signal_type, v.value), []).append(position)
        if not wanted:
            return []
        rows = conn.execute(
            self._entry_query().where(
                sa.tuple_(entry_signals.c.signal_type, entry_signals.c.value).in_(list(wanted))
            )
        ).all()
        matches = []
        for row in rows:
            for position in positions[(row.signal_type, row.value)]:
                matches.append(self._to_match(row, 0, None, "original", position))
        return matches

    def _match_pdq(
        self, conn: sa.Connection, media: Sequence[Sequence[SignalValue]]
    ) -> list[Match]:
        queries: list[tuple[int, SignalValue]] = [
            (position, v)
            for position, values in enumerate(media)
            for v in values
            if v.signal_type == "pdq" and (v.quality or 0) >= self.min_quality
        ]
        if not queries or len(self.index) == 0:
            return []
        radius = conn.execute(sa.select(sa.func.max(banks.c.threshold))).scalar() or 0
        vectors = np.frombuffer(b"".join(from_hex(v.value) for _, v in queries), np.uint8)
        hits = self.index.search(vectors.reshape(-1, 32), int(radius))
        wanted = {row_id for per_query in hits for row_id, _ in per_query}
        if not wanted:
            return []
        rows = {
            r.id: r for r in conn.execute(self._entry_query().where(entry_signals.c.id.in_(wanted)))
        }
        if gone := wanted - rows.keys():  # deleted by some process since it was indexed
            self.forget(sorted(gone))
        matches = []
        for (position, value), per_query in zip(queries, hits, strict=True):
            for row_id, distance in per_query:
                row = rows.get(row_id)
                if row is None or distance > row.threshold:
                    continue
                if row.quality is not None and row.quality < self.min_quality:
                    continue
                matches.append(
                    self._to_match(row, distance, value.quality, value.variant, position)
                )
        return matches

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
