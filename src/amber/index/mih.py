"""Multi-index hashing (MIH): exact Hamming range search over 256-bit PDQ hashes.

Each hash is cut into chunks, one per bucket table (11 tables of 23 bits at 10 million
rows). By the pigeonhole principle, a hash within ``r`` bits of a query has some chunk
within a few bits of the query's (``probes.py``), so probing, in each table, the buckets
within that many flips finds every match; candidates are then checked with an exact
popcount (``kernels.py``). The answer is exact for every radius 0..63; when probing would
cost more than reading every row, the index scans instead.

State is two segments plus tombstones. The **base** is built in one go and searched
through its tables. The **delta** holds rows added since, in files preallocated to a
fixed capacity and filled in place; it is scanned. When the delta is full (or tombstones
outnumber its capacity) everything live is merged into a new base.

Several processes may share one folder: writers take the folder's lock and apply their
change to the latest state on disk; readers pick up other processes' writes with
``refresh``. The files, the manifest and the guarantees are described in
``docs/index.md`` and implemented in ``layout.py``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt

from amber.errors import UserError
from amber.index import probes
from amber.index.layout import (
    EMPTY_BASE,
    HASH_BYTES,
    Base,
    Delta,
    Hashes,
    Ids,
    IndexCorruptError,
    Manifest,
    base_file,
    create_delta,
    load_base,
    load_delta,
    load_tombstones,
    locked,
    next_generation,
    parse_manifest,
    read_stamp,
    remove_unreferenced,
    row_bits,
    write_base,
    write_delta_rows,
    write_manifest,
    write_tombstones,
)

__all__ = ["MAX_DELTA", "MAX_RADIUS", "MIN_DELTA", "IndexCorruptError", "PdqIndex"]

MAX_RADIUS = 63

#: Delta capacity is 5% of the base, at least this many rows ...
MIN_DELTA = 4096
#: ... and at most this many, so scanning the delta stays well under a millisecond.
MAX_DELTA = 65536
#: How often a reader re-reads a state that writers keep replacing while it maps it.
_LOAD_ATTEMPTS = 20
#: Multiplies the cost of scanning in the probe plan (tests: 0 always scans, inf never).
_scan_bias = 1.0


@dataclass(frozen=True, slots=True)
class _State:
    """One consistent state to search; replaced, never changed, by every write."""

    stamp: bytes  # manifest.json as read or written: equal bytes, same state
    manifest: Manifest
    base: Base
    delta: Delta | None  # mapped at full capacity
    tombstones: Ids

    @property
    def delta_ids(self) -> Ids:
        """Ids of the delta's valid rows."""
        return EMPTY_BASE.ids if self.delta is None else self.delta.ids[: self.manifest.delta_rows]

    @property
    def delta_hashes(self) -> Hashes:
        """Hashes of the delta's valid rows."""
        if self.delta is None:
            return EMPTY_BASE.hashes
        return self.delta.hashes[: self.manifest.delta_rows]


_EMPTY = _State(b"", Manifest(), EMPTY_BASE, None, EMPTY_BASE.ids)


# --------------------------------------------------------------------------- the index


class PdqIndex:
    """A persistent, incrementally updated near-duplicate index of 256-bit PDQ hashes.

    Open one with ``PdqIndex.open(directory)``. Ids are non-negative int64 (database row
    ids). Adding an id that is live replaces its hash (a no-op if the hash is the same).
    Writers in any process take the folder's lock and apply their change to the latest
    state on disk; a search sees the state as of this object's last open, write or
    ``refresh``. Searches may run while another thread writes.
    """

    def __init__(self, directory: Path, state: _State) -> None:
        """Use ``PdqIndex.open`` or ``PdqIndex.rebuild``."""
        self._directory = directory
        self._state = state
        self._write_lock = threading.Lock()  # one writer per process; flock across them
        self._swap_lock = threading.Lock()  # guards replacing ``_state``

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, directory: Path | str) -> PdqIndex:
        """Open the index in ``directory``, creating the folder (empty index) if absent.

        Maps the files (nothing is read in full), so it takes milliseconds at any size.
        Raises ``IndexCorruptError`` naming the file when the folder is not a
        consistent index; ``rebuild`` then starts it afresh.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, _load_state(directory, None))

    @classmethod
    def rebuild(cls, directory: Path | str, ids: npt.ArrayLike, hashes: npt.ArrayLike) -> PdqIndex:
        """Replace whatever is in ``directory`` (even a corrupt index) with these rows.

        ``max_id`` becomes the largest of ``ids`` (-1 if none); the last row of a
        repeated id wins. Raises ``UserError`` on bad input.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ids_, hashes_ = _last_per_id(*_check_rows(ids, hashes))
        with locked(directory):
            manifest = Manifest(
                generation=next_generation(directory), max_id=int(ids_.max(initial=-1))
            )
            manifest = write_base(directory, manifest, ids_, hashes_)
            stamp = write_manifest(directory, manifest)
            remove_unreferenced(directory, manifest)
            base = load_base(directory, manifest)
        return cls(directory, _State(stamp, manifest, base, None, EMPTY_BASE.ids))

    def refresh(self) -> bool:
        """Take up the folder's latest state if another process (or index) changed it.

        Reads ``manifest.json`` (a few hundred bytes) and returns ``False`` when it is
        unchanged; otherwise maps the segments that changed and returns ``True``.
        Raises ``IndexCorruptError`` when the latest state cannot be read.
        """
        state = _load_state(self._directory, self._state)
        return self._take(state)

    # ----------------------------------------------------------------- reading

    @property
    def directory(self) -> Path:
        """The folder this index lives in."""
        return self._directory

    @property
    def max_id(self) -> int:
        """The largest id ever added (even if removed since); -1 for a new index."""
        return self._state.manifest.max_id

    @property
    def generation(self) -> int:
        """The manifest generation this index serves (grows with every write)."""
        return self._state.manifest.generation

    def __len__(self) -> int:
        """Number of live (added and not removed) ids."""
        manifest = self._state.manifest
        return manifest.base_rows + manifest.delta_rows - manifest.tombstone_rows

    def __repr__(self) -> str:
        return f"PdqIndex({str(self._directory)!r}, live={len(self)}, max_id={self.max_id})"

    def search(self, queries: npt.ArrayLike, radius: int) -> list[list[tuple[int, int]]]:
        """For each query, every live ``(id, distance)`` within ``radius`` bits.

        ``queries`` is ``(q, 32)`` uint8; ``radius`` is 0..63. Each list is sorted by
        distance, then id. The first search in a process loads the compiled kernels
        (0.2 to 1.5 seconds). Raises ``UserError`` on a bad shape, dtype or radius and
        ``IndexCorruptError`` when a base file holds values out of range.
        """
        queries_ = _check_hashes(queries, "queries")
        radius = _check_radius(radius)
        count = int(queries_.shape[0])
        if count == 0:
            return []
        state = self._state
        words = np.array(queries_, dtype=np.uint8, order="C").view(np.uint64)  # own, writable
        parts = []
        base = state.base
        if base.rows:
            parts.append(_search_base(self._directory, base, words, radius))
        if state.manifest.delta_rows:
            delta = state.delta_hashes.view(np.uint64)
            found = _collect(lambda room: _kernels().scan(words, delta, radius, room), count)
            found[:, 1] += base.rows
            parts.append(found)
        found = np.concatenate(parts) if parts else np.empty((0, 3), np.int64)
        query, position, distance = found[:, 0], found[:, 1], found[:, 2]
        if state.tombstones.shape[0]:
            alive = ~_in_sorted(position, state.tombstones)
            query, position, distance = query[alive], position[alive], distance[alive]
        in_base = position < base.rows
        ids = np.empty(position.shape, np.int64)
        ids[in_base] = base.ids_at(position[in_base])
        ids[~in_base] = np.take(state.delta_ids, position[~in_base] - base.rows)
        order = np.lexsort((ids, distance, query))
        ids_list, distance_list = ids[order].tolist(), distance[order].tolist()
        ends = np.cumsum(np.bincount(query, minlength=count)).tolist()
        results, begin = [], 0
        for end in ends:
            results.append(list(zip(ids_list[begin:end], distance_list[begin:end], strict=True)))
            begin = end
        return results

    # ----------------------------------------------------------------- writing

    def add(self, ids: npt.ArrayLike, hashes: npt.ArrayLike) -> None:
        """Add rows (``ids`` ``(n,)`` int, ``hashes`` ``(n, 32)`` uint8), durably.

        Applied to the latest state on disk, under the folder's lock. A live id is
        replaced by its new hash; within one call the last row of an id wins. Merges
        into a new base when the delta is full (seconds at 10M rows). Raises
        ``UserError`` on bad input.
        """
        ids_, hashes_ = _last_per_id(*_check_rows(ids, hashes))
        if ids_.shape[0] == 0:
            return
        with self._writing() as state:
            manifest = state.manifest
            max_id = max(manifest.max_id, int(ids_.max()))
            old = _positions(state, ids_)
            present = old >= 0
            if present.any():
                same = np.zeros(ids_.shape, bool)
                same[present] = (_hashes_at(state, old[present]) == hashes_[present]).all(axis=1)
                ids_, hashes_, old = ids_[~same], hashes_[~same], old[~same]
            if ids_.shape[0] == 0:
                return
            dead = old[old >= 0]
            capacity = manifest.delta_capacity or _delta_capacity(manifest.base_rows)
            if manifest.delta_rows + ids_.shape[0] > capacity:
                self._merge(state, dead, ids_, hashes_, max_id)
            else:
                self._append(state, dead, ids_, hashes_, max_id, capacity)

    def remove(self, ids: npt.ArrayLike) -> None:
        """Remove these ids (unknown ones are ignored), durably, under the folder's lock.

        Raises ``UserError`` on bad input.
        """
        ids_ = np.unique(_check_ids(ids))
        with self._writing() as state:
            positions = _positions(state, ids_)
            dead = positions[positions >= 0]
            if dead.shape[0] == 0:
                return
            manifest = state.manifest
            limit = max(manifest.delta_capacity, _delta_capacity(manifest.base_rows))
            if manifest.tombstone_rows + dead.shape[0] > limit:
                self._merge(state, dead, None, None, manifest.max_id)
                return
            generation = manifest.generation + 1
            tombstones = _with_tombstones(self._directory, state, dead, generation)
            updated = replace(
                manifest,
                generation=generation,
                tombstone_generation=generation,
                tombstone_rows=int(tombstones.shape[0]),
            )
            self._commit(replace(state, manifest=updated, tombstones=tombstones))

    def compact(self) -> None:
        """Merge the delta and tombstones into a new base now (``add`` does it when due)."""
        with self._writing() as state:
            manifest = state.manifest
            if manifest.delta_generation is not None or manifest.tombstone_generation is not None:
                self._merge(state, EMPTY_BASE.ids, None, None, manifest.max_id)

    def clear(self) -> None:
        """Remove every row and reset ``max_id`` to -1, durably."""
        with self._writing() as state:
            manifest = Manifest(generation=state.manifest.generation + 1)
            self._commit(replace(_EMPTY, manifest=manifest))

    # ----------------------------------------------------------------- internals

    def _take(self, state: _State) -> bool:
        """Serve ``state`` unless this index already serves a newer one."""
        with self._swap_lock:
            current = self._state
            if state is current or state.manifest.generation < current.manifest.generation:
                return False
            self._state = state
            return state.stamp != current.stamp

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_State]:
        """Hold this process's and the folder's writer locks; yield the latest state."""
        with self._write_lock, locked(self._directory):
            state = _load_state(self._directory, self._state)
            self._take(state)
            yield state

    def _commit(self, state: _State) -> None:
        """Write ``state.manifest``, delete what it no longer names and serve it."""
        stamp = write_manifest(self._directory, state.manifest)
        remove_unreferenced(self._directory, state.manifest)
        self._take(replace(state, stamp=stamp))

    def _append(
        self, state: _State, dead: Ids, ids: Ids, hashes: Hashes, max_id: int, capacity: int
    ) -> None:
        """Write rows into the delta beyond its valid end, then commit a manifest."""
        manifest = state.manifest
        generation = manifest.generation + 1
        updated = replace(
            manifest,
            generation=generation,
            max_id=max_id,
            delta_rows=manifest.delta_rows + int(ids.shape[0]),
            delta_capacity=capacity,
        )
        delta, delta_generation = state.delta, manifest.delta_generation
        if delta is None or delta_generation is None:
            delta_generation = generation
            updated = replace(updated, delta_generation=generation)
            delta = create_delta(self._directory, generation, capacity)
        write_delta_rows(self._directory, delta_generation, delta, manifest.delta_rows, ids, hashes)
        tombstones = state.tombstones
        if dead.shape[0]:
            tombstones = _with_tombstones(self._directory, state, dead, generation)
            updated = replace(
                updated, tombstone_generation=generation, tombstone_rows=int(tombstones.shape[0])
            )
        self._commit(replace(state, manifest=updated, delta=delta, tombstones=tombstones))

    def _merge(
        self, state: _State, dead: Ids, ids: Ids | None, hashes: Hashes | None, max_id: int
    ) -> None:
        """Build a new base from every live row plus ``ids``/``hashes``; commit it."""
        base = state.base
        alive = np.ones(base.rows + state.manifest.delta_rows, bool)
        alive[np.union1d(state.tombstones, dead)] = False
        live = np.flatnonzero(alive)
        live_base, live_delta = live[live < base.rows], live[live >= base.rows] - base.rows
        sources = [
            (base.ids, base.hashes, live_base),
            (state.delta_ids, state.delta_hashes, live_delta),
        ]
        if ids is not None and hashes is not None:
            sources.append((ids, hashes, np.arange(ids.shape[0])))
        # One copy of the live rows (gathered straight into place): 40 bytes a row.
        count = sum(int(rows.shape[0]) for _, _, rows in sources)
        all_ids = np.empty(count, np.int64)
        all_hashes = np.empty((count, HASH_BYTES), np.uint8)
        start = 0
        for source_ids, source_hashes, rows in sources:
            end = start + int(rows.shape[0])
            # mode="clip" (the rows are in range) writes into ``out`` without a buffer.
            np.take(source_ids, rows, out=all_ids[start:end], mode="clip")
            np.take(source_hashes, rows, axis=0, out=all_hashes[start:end], mode="clip")
            start = end
        manifest = Manifest(generation=state.manifest.generation + 1, max_id=max_id)
        manifest = write_base(self._directory, manifest, all_ids, all_hashes)
        new_base = load_base(self._directory, manifest)
        self._commit(_State(b"", manifest, new_base, None, EMPTY_BASE.ids))


# --------------------------------------------------------------------------- state


def _load_state(directory: Path, previous: _State | None) -> _State:
    """The folder's latest state, reusing ``previous``'s mapped segments where unchanged.

    A writer may replace the state (and delete its files) while this maps it; then it
    reads the new one. Raises ``IndexCorruptError`` when the state on disk, unchanged
    between two reads, cannot be mapped.
    """
    for _ in range(_LOAD_ATTEMPTS):
        stamp = read_stamp(directory)
        if previous is not None and stamp == previous.stamp:
            return previous
        try:
            return _map_state(directory, stamp, previous)
        except IndexCorruptError:
            if read_stamp(directory) == stamp:
                raise
    return _map_state(directory, read_stamp(directory), previous)


def _map_state(directory: Path, stamp: bytes, previous: _State | None) -> _State:
    """Map the state ``stamp`` names. Raises ``IndexCorruptError``."""
    manifest = parse_manifest(directory, stamp)
    old = previous.manifest if previous is not None else Manifest()
    if previous is not None and (
        old.base_generation,
        old.base_rows,
        old.base_tables,
    ) == (manifest.base_generation, manifest.base_rows, manifest.base_tables):
        base = previous.base
    else:
        base = load_base(directory, manifest)
    if previous is not None and (old.delta_generation, old.delta_capacity) == (
        manifest.delta_generation,
        manifest.delta_capacity,
    ):
        delta = previous.delta
    else:
        delta = load_delta(directory, manifest)
    if previous is not None and (old.tombstone_generation, old.tombstone_rows) == (
        manifest.tombstone_generation,
        manifest.tombstone_rows,
    ):
        tombstones = previous.tombstones
    else:
        tombstones = load_tombstones(directory, manifest)
    return _State(stamp, manifest, base, delta, tombstones)


def _positions(state: _State, ids: Ids) -> Ids:
    """Row position of each live id (unique ids), -1 where absent."""
    positions = np.full(ids.shape, -1, np.int64)
    if ids.shape[0] == 0 or int(ids.min()) > state.manifest.max_id:
        return positions  # ids above every id ever added: the common case, new rows
    base = state.base
    if base.rows:
        at = base.rows_of(ids)
        found = at >= 0
        found[found] = ~_in_sorted(at[found], state.tombstones)
        positions[found] = at[found]
    delta_ids = state.delta_ids
    if delta_ids.shape[0]:
        rows = np.flatnonzero(np.isin(delta_ids, ids))
        rows = rows[~_in_sorted(rows + base.rows, state.tombstones)]  # at most one live per id
        order = np.argsort(ids)
        where = order[np.searchsorted(ids, delta_ids[rows], sorter=order)]
        positions[where] = rows + base.rows
    return positions


def _hashes_at(state: _State, positions: Ids) -> Hashes:
    """Stored hashes at these live row positions."""
    rows = state.base.rows
    out = np.empty((positions.shape[0], HASH_BYTES), np.uint8)
    in_base = positions < rows
    out[in_base] = np.take(state.base.hashes, positions[in_base], axis=0)
    out[~in_base] = np.take(state.delta_hashes, positions[~in_base] - rows, axis=0)
    return out


def _with_tombstones(directory: Path, state: _State, dead: Ids, generation: int) -> Ids:
    """Write the state's tombstones plus ``dead`` as the file of ``generation``."""
    tombstones = np.union1d(state.tombstones, dead).astype(np.int64)
    write_tombstones(directory, generation, tombstones)
    return tombstones


# --------------------------------------------------------------------------- search

#: Room for this many matches per query before a kernel is run again with more ...
_ROOM = 64
#: ... and at least this many in all (96 KiB: a query with thousands of near-duplicates,
#: common in real banks of video frames, is then probed once, not twice).
_MIN_ROOM = 4096


def _kernels() -> ModuleType:
    """The compiled kernels; importing numba is left to the first search or build."""
    from amber.index import kernels

    return kernels


def _collect(run: Callable[[npt.NDArray[np.int64]], int], queries: int) -> npt.NDArray[np.int64]:
    """``(query, row, distance)`` rows a kernel writes into the room it is given.

    ``run(room)`` fills ``room`` and returns how many matches there are; if they did
    not fit, it runs again with room for all of them.
    """
    room = np.empty((max(_ROOM * queries, _MIN_ROOM), 3), np.int64)
    count = run(room)
    if count > room.shape[0]:
        room = np.empty((count, 3), np.int64)
        count = run(room)
    return room[:count]


def _search_base(
    directory: Path, base: Base, words: npt.NDArray[np.uint64], radius: int
) -> npt.NDArray[np.int64]:
    """Matches in the base: ``(query, row, distance)`` rows.

    Raises ``IndexCorruptError`` naming the file when a bucket bound or a posting is out
    of range.
    """
    kernels = _kernels()
    tables = base.tables
    plan = probes.plan(tables, base.rows, radius, probes.SCAN_COST * _scan_bias)
    if plan is None:
        return _collect(lambda room: kernels.scan(words, base.words, radius, room), len(words))

    def run(room: npt.NDArray[np.int64]) -> int:
        count, status, _ = kernels.search_tables(
            words,
            base.words,
            base.offsets,
            base.postings,
            tables.table_bits,
            tables.bucket_bits,
            row_bits(base.rows),
            plan.thresholds,
            plan.masks,
            plan.mask_flips,
            plan.mask_ends,
            radius,
            room,
        )
        if status != kernels.OK:
            part = "offsets" if status == kernels.BAD_OFFSETS else "postings"
            path = directory / base_file(base.generation, part)
            raise IndexCorruptError(f"holds a {part[:-1]} out of range", path=path)
        return int(count)

    return _collect(run, len(words))


def _in_sorted(
    values: npt.NDArray[np.int64], table: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether each value is in the ascending array ``table``."""
    if table.shape[0] == 0:
        return np.zeros(values.shape, bool)
    at = np.minimum(np.searchsorted(table, values), table.shape[0] - 1)
    result: npt.NDArray[np.bool_] = np.take(table, at) == values
    return result


# --------------------------------------------------------------------------- input


def _check_hashes(array: npt.ArrayLike, name: str) -> Hashes:
    """``array`` as ``(n, 32)`` uint8. Raises ``UserError`` otherwise."""
    hashes = np.asarray(array)
    if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES:
        raise UserError(
            f"{name} has dtype {hashes.dtype} and shape {hashes.shape}; "
            f"expected uint8 of shape (n, {HASH_BYTES})"
        )
    return hashes


def _check_ids(array: npt.ArrayLike) -> Ids:
    """``array`` as non-negative ``(n,)`` int64. Raises ``UserError`` otherwise."""
    ids = np.asarray(array)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.shape[0] == 0):
        raise UserError(f"ids has dtype {ids.dtype} and shape {ids.shape}; expected (n,) int64")
    ids = ids.astype(np.int64)
    if ids.shape[0] and int(ids.min()) < 0:
        raise UserError(f"id {int(ids.min())} is negative; ids are database row ids (>= 0)")
    return ids


def _check_rows(ids: npt.ArrayLike, hashes: npt.ArrayLike) -> tuple[Ids, Hashes]:
    """Checked ids and hashes of the same length. Raises ``UserError``."""
    ids_, hashes_ = _check_ids(ids), _check_hashes(hashes, "hashes")
    if ids_.shape[0] != hashes_.shape[0]:
        raise UserError(f"{ids_.shape[0]} ids but {hashes_.shape[0]} hashes; give one per id")
    return ids_, np.ascontiguousarray(hashes_)


def _check_radius(radius: int) -> int:
    """``radius`` if it is an integer in 0..63. Raises ``UserError``."""
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
        raise UserError(f"radius {radius!r} is not an integer; give 0..{MAX_RADIUS}")
    if not 0 <= radius <= MAX_RADIUS:
        raise UserError(f"radius {radius} is out of range; give 0..{MAX_RADIUS}")
    return int(radius)


def _last_per_id(ids: Ids, hashes: Hashes) -> tuple[Ids, Hashes]:
    """Keep the last row of each id, in input order (the arrays themselves if no id
    repeats: a copy of 100 million hashes is 3.2 GB)."""
    _, last_from_end = np.unique(ids[::-1], return_index=True)
    if last_from_end.shape[0] == ids.shape[0]:
        return ids, hashes
    keep = np.sort(ids.shape[0] - 1 - last_from_end)
    return ids[keep], hashes[keep]


def _delta_capacity(base_rows: int) -> int:
    """Rows the delta holds before a merge: 5% of the base, within 4096..65536."""
    return min(max(MIN_DELTA, base_rows // 20), MAX_DELTA)
