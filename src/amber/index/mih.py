"""Multi-index hashing (MIH): exact Hamming range search over 256-bit PDQ hashes.

Each hash is cut into 16 chunks of 16 bits (chunk ``j`` is bytes ``2j, 2j+1`` read as a
little-endian uint16). If two hashes are within ``r`` bits, some chunk differs by at most
``r // 16`` bits (pigeonhole), so probing, for every chunk of the query, its bucket and
the buckets within ``r // 16`` bit flips finds every match; candidates are then checked
with an exact popcount. The answer is exact for every radius 0..63; when a radius is so
wide that probing would touch a large share of the rows, the index scans instead.

State is two segments plus tombstones. The **base** is built in one go and searched by
MIH. The **delta** holds rows added since, in files preallocated to a fixed capacity and
filled in place; it is searched by brute force. When the delta is full (or tombstones
outnumber its capacity) everything live is merged into a new base.

The folder's files, the manifest and the crash guarantees are described in
``docs/index.md`` and implemented in ``layout.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from amber.errors import UserError
from amber.index.layout import (
    BUCKETS,
    CHUNKS,
    EMPTY_BASE,
    HASH_BYTES,
    Base,
    Hashes,
    Ids,
    IndexCorruptError,
    Manifest,
    create_delta,
    load_base,
    load_delta,
    load_tombstones,
    next_generation,
    read_manifest,
    remove_unreferenced,
    write_base,
    write_delta_rows,
    write_manifest,
    write_tombstones,
)

__all__ = ["MAX_DELTA", "MAX_RADIUS", "MIN_DELTA", "IndexCorruptError", "PdqIndex"]

MAX_RADIUS = 63

#: Delta capacity is 5% of the base, at least this many rows ...
MIN_DELTA = 4096
#: ... and at most this many, so brute force over the delta stays well under a millisecond.
MAX_DELTA = 65536
#: Queries probed together; bounds the candidate arrays of one step.
_QUERY_BLOCK = 16
#: Scan the base instead of probing when probes would touch more than 1/8 of its rows
#: (0: never scan).
_SCAN_SHARE = 8
#: Rows per step when scanning.
_SCAN_ROWS = 1 << 20

Words = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One consistent state to search; replaced, never changed, by every write."""

    base: Base
    delta_ids: Ids
    delta_hashes: Hashes
    tombstones: Ids


# --------------------------------------------------------------------------- the index


class PdqIndex:
    """A persistent, incrementally updated near-duplicate index of 256-bit PDQ hashes.

    Open one with ``PdqIndex.open(directory)``. Ids are non-negative int64 (database row
    ids). Adding an id that is live replaces its hash (a no-op if the hash is the same).
    One writer at a time; searches may run while one thread writes.
    """

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        """Use ``PdqIndex.open``; this maps the state ``manifest`` describes.

        Raises ``IndexCorruptError`` naming the first file that does not fit.
        """
        self._directory = directory
        self._lock = threading.Lock()
        self._manifest = manifest
        self._delta = load_delta(directory, manifest)
        self._delta_rows: dict[int, int] = {}
        self._snapshot = self._snapshot_of(
            manifest, load_base(directory, manifest), load_tombstones(directory, manifest)
        )
        base_rows = self._snapshot.base.rows
        delta_ids = self._snapshot.delta_ids
        live = ~_in_sorted(
            np.arange(delta_ids.shape[0], dtype=np.int64) + base_rows, self._snapshot.tombstones
        )
        self._delta_rows = dict(
            zip(delta_ids[live].tolist(), np.flatnonzero(live).tolist(), strict=True)
        )

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, directory: Path | str) -> PdqIndex:
        """Open the index in ``directory``, creating the folder (empty index) if absent.

        Raises ``IndexCorruptError`` naming the file when the folder is not a
        consistent index; ``rebuild`` then starts it afresh.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(directory)
        for _ in range(2):
            try:
                return cls(directory, manifest)
            except IndexCorruptError:
                # A writer may have replaced the state while we read it: read it again.
                latest = read_manifest(directory)
                if latest == manifest:
                    raise
                manifest = latest
        return cls(directory, manifest)

    @classmethod
    def rebuild(cls, directory: Path | str, ids: npt.ArrayLike, hashes: npt.ArrayLike) -> PdqIndex:
        """Replace whatever is in ``directory`` (even a corrupt index) with these rows.

        ``max_id`` becomes the largest of ``ids`` (-1 if none); the last row of a
        repeated id wins. Raises ``UserError`` on bad input.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ids_, hashes_ = _last_per_id(*_check_rows(ids, hashes))
        manifest = Manifest(generation=next_generation(directory), max_id=int(ids_.max(initial=-1)))
        manifest = write_base(directory, manifest, ids_, hashes_)
        write_manifest(directory, manifest)
        remove_unreferenced(directory, manifest)
        return cls(directory, manifest)

    # ----------------------------------------------------------------- reading

    @property
    def directory(self) -> Path:
        """The folder this index lives in."""
        return self._directory

    @property
    def max_id(self) -> int:
        """The largest id ever added (even if removed since); -1 for a new index."""
        return self._manifest.max_id

    def __len__(self) -> int:
        """Number of live (added and not removed) ids."""
        snapshot = self._snapshot
        return (
            snapshot.base.rows
            + int(snapshot.delta_ids.shape[0])
            - int(snapshot.tombstones.shape[0])
        )

    def __repr__(self) -> str:
        return f"PdqIndex({str(self._directory)!r}, live={len(self)}, max_id={self.max_id})"

    def search(self, queries: npt.ArrayLike, radius: int) -> list[list[tuple[int, int]]]:
        """For each query, every live ``(id, distance)`` within ``radius`` bits.

        ``queries`` is ``(q, 32)`` uint8; ``radius`` is 0..63. Each list is sorted by
        distance, then id. Raises ``UserError`` on a bad shape, dtype or radius.
        """
        queries_ = _check_hashes(queries, "queries")
        radius = _check_radius(radius)
        snapshot = self._snapshot
        count = int(queries_.shape[0])
        if count == 0:
            return []
        words = np.ascontiguousarray(queries_).view(np.uint64)
        base = snapshot.base
        found: list[_Matches] = []
        for start in range(0, count, _QUERY_BLOCK):
            found.extend(_search_base(base, words[start : start + _QUERY_BLOCK], radius, start))
        delta_words = snapshot.delta_hashes.view(np.uint64)
        if delta_words.shape[0]:
            for number in range(count):
                distances = _distances(delta_words, words[number])
                rows = np.flatnonzero(distances <= radius)
                found.append((np.full(rows.shape, number), rows + base.rows, distances[rows]))
        if not found:
            return [[] for _ in range(count)]
        query = np.concatenate([part[0] for part in found])
        position = np.concatenate([part[1] for part in found])
        distance = np.concatenate([part[2] for part in found])
        if snapshot.tombstones.shape[0]:
            alive = ~_in_sorted(position, snapshot.tombstones)
            query, position, distance = query[alive], position[alive], distance[alive]
        in_base = position < base.rows
        ids = np.empty(position.shape, np.int64)
        ids[in_base] = np.take(base.ids, position[in_base])
        ids[~in_base] = np.take(snapshot.delta_ids, position[~in_base] - base.rows)
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

        A live id is replaced by its new hash; within one call the last row of an id
        wins. Merges into a new base when the delta is full (slow at scale: seconds at
        10M rows). Raises ``UserError`` on bad input.
        """
        ids_, hashes_ = _last_per_id(*_check_rows(ids, hashes))
        if ids_.shape[0] == 0:
            return
        with self._lock:
            manifest = self._manifest
            max_id = max(manifest.max_id, int(ids_.max()))
            old = self._positions(ids_)
            present = old >= 0
            if present.any():
                same = np.zeros(ids_.shape, bool)
                same[present] = (self._hashes_at(old[present]) == hashes_[present]).all(axis=1)
                ids_, hashes_, old = ids_[~same], hashes_[~same], old[~same]
            if ids_.shape[0] == 0:
                return
            dead = old[old >= 0]
            capacity = manifest.delta_capacity or _delta_capacity(manifest.base_rows)
            if manifest.delta_rows + ids_.shape[0] > capacity:
                self._merge(dead, ids_, hashes_, max_id)
            else:
                self._append(dead, ids_, hashes_, max_id, capacity)

    def remove(self, ids: npt.ArrayLike) -> None:
        """Remove these ids (unknown ones are ignored), durably. Raises ``UserError``."""
        ids_ = np.unique(_check_ids(ids))
        with self._lock:
            positions = self._positions(ids_)
            dead = positions[positions >= 0]
            if dead.shape[0] == 0:
                return
            manifest = self._manifest
            limit = max(manifest.delta_capacity, _delta_capacity(manifest.base_rows))
            if manifest.tombstone_rows + dead.shape[0] > limit:
                self._merge(dead, None, None, manifest.max_id)
                return
            generation = manifest.generation + 1
            tombstones = self._write_tombstones(dead, generation)
            updated = replace(
                manifest,
                generation=generation,
                tombstone_generation=generation,
                tombstone_rows=int(tombstones.shape[0]),
            )
            write_manifest(self._directory, updated)
            for id_ in ids_[positions >= self._snapshot.base.rows].tolist():
                del self._delta_rows[id_]
            self._switch(updated, tombstones)

    def compact(self) -> None:
        """Merge the delta and tombstones into a new base now (``add`` does it when due)."""
        with self._lock:
            manifest = self._manifest
            if manifest.delta_generation is not None or manifest.tombstone_generation is not None:
                self._merge(np.empty(0, np.int64), None, None, manifest.max_id)

    def clear(self) -> None:
        """Remove every row and reset ``max_id`` to -1, durably."""
        with self._lock:
            manifest = Manifest(generation=self._manifest.generation + 1)
            write_manifest(self._directory, manifest)
            self._delta, self._delta_rows = None, {}
            self._base_changed(manifest)

    # ----------------------------------------------------------------- internals

    def _snapshot_of(self, manifest: Manifest, base: Base, tombstones: Ids) -> _Snapshot:
        """The searchable view of ``manifest`` given its mapped parts."""
        delta, rows = self._delta, manifest.delta_rows
        if delta is None:
            return _Snapshot(base, EMPTY_BASE.ids, EMPTY_BASE.hashes, tombstones)
        return _Snapshot(base, delta.ids[:rows], delta.hashes[:rows], tombstones)

    def _switch(self, manifest: Manifest, tombstones: Ids) -> None:
        """Serve ``manifest`` (already written) with the same base and delta files."""
        remove_unreferenced(self._directory, manifest)
        self._manifest = manifest
        self._snapshot = self._snapshot_of(manifest, self._snapshot.base, tombstones)

    def _base_changed(self, manifest: Manifest) -> None:
        """Serve ``manifest`` (already written, a new base and no delta or tombstones)."""
        remove_unreferenced(self._directory, manifest)
        base = load_base(self._directory, manifest)
        self._manifest = manifest
        self._snapshot = self._snapshot_of(manifest, base, EMPTY_BASE.ids)

    def _positions(self, ids: Ids) -> Ids:
        """Row position of each live id, -1 where absent."""
        snapshot = self._snapshot
        base = snapshot.base
        positions = np.full(ids.shape, -1, np.int64)
        if base.rows:
            at = np.minimum(np.searchsorted(base.ids, ids), base.rows - 1)
            found = np.take(base.ids, at) == ids
            found &= ~_in_sorted(at, snapshot.tombstones)
            positions[found] = at[found]
        for number, id_ in enumerate(ids.tolist()):
            row = self._delta_rows.get(id_)
            if row is not None:
                positions[number] = base.rows + row
        return positions

    def _hashes_at(self, positions: Ids) -> Hashes:
        """Stored hashes at these live row positions."""
        snapshot = self._snapshot
        rows = snapshot.base.rows
        out = np.empty((positions.shape[0], HASH_BYTES), np.uint8)
        in_base = positions < rows
        out[in_base] = np.take(snapshot.base.hashes, positions[in_base], axis=0)
        out[~in_base] = np.take(snapshot.delta_hashes, positions[~in_base] - rows, axis=0)
        return out

    def _write_tombstones(self, dead: Ids, generation: int) -> Ids:
        """Write the tombstones plus ``dead`` as a new file; return them."""
        tombstones = np.union1d(self._snapshot.tombstones, dead).astype(np.int64)
        write_tombstones(self._directory, generation, tombstones)
        return tombstones

    def _append(self, dead: Ids, ids: Ids, hashes: Hashes, max_id: int, capacity: int) -> None:
        """Write rows into the delta beyond its valid end, then commit a manifest."""
        manifest = self._manifest
        generation = manifest.generation + 1
        updated = replace(
            manifest,
            generation=generation,
            max_id=max_id,
            delta_rows=manifest.delta_rows + int(ids.shape[0]),
            delta_capacity=capacity,
        )
        delta, delta_generation = self._delta, manifest.delta_generation
        if delta is None or delta_generation is None:
            delta_generation = generation
            updated = replace(updated, delta_generation=generation)
            delta = create_delta(self._directory, generation, capacity)
        start = manifest.delta_rows
        write_delta_rows(self._directory, delta_generation, delta, start, ids, hashes)
        tombstones = self._snapshot.tombstones
        if dead.shape[0]:
            tombstones = self._write_tombstones(dead, generation)
            updated = replace(
                updated,
                tombstone_generation=generation,
                tombstone_rows=int(tombstones.shape[0]),
            )
        write_manifest(self._directory, updated)
        self._delta = delta
        self._delta_rows.update(zip(ids.tolist(), range(start, start + ids.shape[0]), strict=True))
        self._switch(updated, tombstones)

    def _merge(self, dead: Ids, ids: Ids | None, hashes: Hashes | None, max_id: int) -> None:
        """Build a new base from every live row plus ``ids``/``hashes``; commit it."""
        snapshot = self._snapshot
        base = snapshot.base
        removed = np.union1d(snapshot.tombstones, dead)
        total = base.rows + int(snapshot.delta_ids.shape[0])
        live = np.flatnonzero(~_in_sorted(np.arange(total, dtype=np.int64), removed))
        live_base, live_delta = live[live < base.rows], live[live >= base.rows] - base.rows
        all_ids = [np.take(base.ids, live_base), np.take(snapshot.delta_ids, live_delta)]
        all_hashes = [
            np.take(base.hashes, live_base, axis=0),
            np.take(snapshot.delta_hashes, live_delta, axis=0),
        ]
        if ids is not None and hashes is not None:
            all_ids.append(ids)
            all_hashes.append(hashes)
        manifest = Manifest(generation=self._manifest.generation + 1, max_id=max_id)
        manifest = write_base(
            self._directory, manifest, np.concatenate(all_ids), np.concatenate(all_hashes)
        )
        write_manifest(self._directory, manifest)
        self._delta, self._delta_rows = None, {}
        self._base_changed(manifest)


_Matches = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint16]]


# --------------------------------------------------------------------------- search


def _search_base(base: Base, words: Words, radius: int, first: int) -> Iterator[_Matches]:
    """Matches in the base for a block of queries: (query number, row, distance) arrays."""
    rows = base.rows
    if rows == 0:
        return
    keys = words.view(np.uint8).view("<u2").astype(np.int64)  # (b, 16) chunk keys
    probes = (keys[:, :, None] ^ _probe_masks(radius // 16)[None, None, :]) + _CHUNK_STARTS
    starts = np.take(base.offsets, probes)
    lengths = np.take(base.offsets, probes + 1) - starts
    totals = lengths.sum(axis=(1, 2))
    scan = totals * _SCAN_SHARE > rows
    hashes = base.hashes.view(np.uint64)
    for number in np.flatnonzero(scan).tolist():
        for begin in range(0, rows, _SCAN_ROWS):
            distances = _distances(hashes[begin : begin + _SCAN_ROWS], words[number])
            hits = np.flatnonzero(distances <= radius)
            yield np.full(hits.shape, first + number), hits + begin, distances[hits]
    probed = np.flatnonzero(~scan)
    if probed.shape[0] == 0:
        return
    starts, lengths = starts[probed].ravel(), lengths[probed].ravel()
    count = int(lengths.sum())
    if count == 0:
        return
    owner = np.repeat(np.repeat(probed, probes.shape[1] * probes.shape[2]), lengths)
    ends = np.cumsum(lengths)
    slots = np.arange(count, dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)
    candidates = np.take(base.postings, slots).astype(np.int64)
    distances = _distances(np.take(hashes, candidates, axis=0), np.take(words, owner, axis=0))
    near = distances <= radius
    owner, candidates, distances = owner[near], candidates[near], distances[near]
    _, unique = np.unique(owner * rows + candidates, return_index=True)
    yield owner[unique] + first, candidates[unique], distances[unique]


_CHUNK_STARTS = (np.arange(CHUNKS, dtype=np.int64) * BUCKETS)[None, :, None]


@lru_cache(maxsize=4)
def _probe_masks(flips: int) -> npt.NDArray[np.int64]:
    """Every 16-bit XOR mask with at most ``flips`` bits set (1, 17, 137 or 697 masks)."""
    values = np.arange(BUCKETS, dtype=np.int64)
    masks = values[_popcount(values.astype(np.uint64)) <= flips]
    masks.setflags(write=False)
    return masks


def _distances(hashes: Words, query: Words) -> npt.NDArray[np.uint16]:
    """Hamming distance of each ``(k, 4)`` uint64 row to ``query`` (``(4,)`` or ``(k, 4)``)."""
    total = _popcount(hashes[:, 0] ^ query[..., 0]).astype(np.uint16)
    for word in range(1, 4):
        total += _popcount(hashes[:, word] ^ query[..., word])
    return total


_BYTE_BITS = np.array([bin(value).count("1") for value in range(256)], np.uint8)


def _popcount(words: npt.NDArray[np.uint64] | npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Set bits per 64-bit word (``np.bitwise_count`` on numpy 2, a byte table before)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.uint8, copy=False)
    as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, 8)
    result: npt.NDArray[np.uint8] = _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.uint8)
    return result


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
    """Keep the last row of each id, in input order."""
    _, last_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(ids.shape[0] - 1 - last_from_end)
    return ids[keep], hashes[keep]


def _delta_capacity(base_rows: int) -> int:
    """Rows the delta holds before a merge: 5% of the base, within 4096..65536."""
    return min(max(MIN_DELTA, base_rows // 20), MAX_DELTA)
