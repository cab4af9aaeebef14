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

Layout of the folder (every array a plain ``.npy``, opened with ``mmap_mode="r"``)::

    manifest.json                 which files make the current state; replaced last
    base-G.ids.npy                (n,) int64, ascending: id of base row i
    base-G.hashes.npy             (n, 32) uint8: hash of base row i
    base-G.postings.npy           (16, n) uint32: per chunk, base rows ordered by chunk key
    base-G.offsets.npy            (16 * 65536 + 1,) int64: bucket (j, key) is
                                  postings.flat[offsets[j * 65536 + key] : offsets[... + 1]]
    delta-G.ids.npy               (capacity,) int64: first ``rows`` are valid
    delta-G.hashes.npy            (capacity, 32) uint8
    tombstones-G.npy              (t,) int64, ascending: removed row positions, where base
                                  row i is position i and delta row i is position n + i

``G`` is the manifest generation that created the file. ``manifest.json``::

    {"format": "amber-pdq-index", "version": 1, "generation": 7, "max_id": 41,
     "base": {"generation": 5, "rows": 40} | null,
     "delta": {"generation": 6, "rows": 1, "capacity": 4096} | null,
     "tombstones": {"generation": 7, "rows": 2} | null}

Crash safety: new files are written under a temporary name, fsynced and renamed; delta
rows are written beyond the manifest's ``rows`` and fsynced; the manifest is replaced
last. A reader therefore sees the old state or the new one. One process writes at a time;
other processes may open the folder to read a snapshot. The folder belongs to the index:
writes delete the files in it that the manifest no longer names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from amber.errors import AmberError, UserError

FORMAT = "amber-pdq-index"
FORMAT_VERSION = 1
HASH_BYTES = 32
CHUNKS = 16
BUCKETS = 1 << 16
MAX_RADIUS = 63
MANIFEST = "manifest.json"

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

_FILE = re.compile(
    r"^(base-\d+\.(ids|hashes|postings|offsets)|delta-\d+\.(ids|hashes)|tombstones-\d+)\.npy$"
)
_TEMP = re.compile(r"^(manifest\.json|.+\.npy)\.tmp$")

Ids = npt.NDArray[np.int64]
Hashes = npt.NDArray[np.uint8]
Words = npt.NDArray[np.uint64]


class IndexCorruptError(AmberError):
    """An index folder cannot be read as a consistent state; rebuild it from the source."""

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(f"{path}: {message}; rebuild the index from its source (PdqIndex.rebuild)")
        self.reason = message
        self.path = str(path)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class _Manifest:
    """What ``manifest.json`` says: the generation of each segment and its row count."""

    generation: int = 0
    max_id: int = -1
    base_generation: int | None = None
    base_rows: int = 0
    delta_generation: int | None = None
    delta_rows: int = 0
    delta_capacity: int = 0
    tombstone_generation: int | None = None
    tombstone_rows: int = 0

    def files(self) -> set[str]:
        """Names of the files this state is made of."""
        names: set[str] = set()
        if self.base_generation is not None:
            names |= {_base_file(self.base_generation, part) for part in _BASE_PARTS}
        if self.delta_generation is not None:
            names |= {_delta_file(self.delta_generation, part) for part in ("ids", "hashes")}
        if self.tombstone_generation is not None:
            names.add(_tombstone_file(self.tombstone_generation))
        return names

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "max_id": self.max_id,
            "base": None
            if self.base_generation is None
            else {"generation": self.base_generation, "rows": self.base_rows},
            "delta": None
            if self.delta_generation is None
            else {
                "generation": self.delta_generation,
                "rows": self.delta_rows,
                "capacity": self.delta_capacity,
            },
            "tombstones": None
            if self.tombstone_generation is None
            else {"generation": self.tombstone_generation, "rows": self.tombstone_rows},
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> _Manifest:
        """Parse a manifest. Raises ``IndexCorruptError`` naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IndexCorruptError(f"not an {FORMAT} manifest", path=path)
        if data.get("version") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"format version {data.get('version')!r} is not {FORMAT_VERSION}", path=path
            )

        def number(holder: dict[str, Any], key: str, low: int) -> int:
            value = holder.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise IndexCorruptError(f"{key} is {value!r}, expected an integer", path=path)
            return value

        def section(key: str) -> dict[str, Any] | None:
            value = data.get(key)
            if value is not None and not isinstance(value, dict):
                raise IndexCorruptError(f"{key} is {value!r}, expected an object", path=path)
            return value

        base, delta, tombs = section("base"), section("delta"), section("tombstones")
        manifest = cls(
            generation=number(data, "generation", 0),
            max_id=number(data, "max_id", -1),
            base_generation=None if base is None else number(base, "generation", 0),
            base_rows=0 if base is None else number(base, "rows", 1),
            delta_generation=None if delta is None else number(delta, "generation", 0),
            delta_rows=0 if delta is None else number(delta, "rows", 0),
            delta_capacity=0 if delta is None else number(delta, "capacity", 1),
            tombstone_generation=None if tombs is None else number(tombs, "generation", 0),
            tombstone_rows=0 if tombs is None else number(tombs, "rows", 1),
        )
        if manifest.delta_rows > manifest.delta_capacity:
            raise IndexCorruptError("delta rows exceed its capacity", path=path)
        return manifest


_BASE_PARTS = ("ids", "hashes", "postings", "offsets")


def _base_file(generation: int, part: str) -> str:
    return f"base-{generation}.{part}.npy"


def _delta_file(generation: int, part: str) -> str:
    return f"delta-{generation}.{part}.npy"


def _tombstone_file(generation: int) -> str:
    return f"tombstones-{generation}.npy"


@dataclass(frozen=True, slots=True)
class _Base:
    """The MIH-indexed segment (memory-mapped)."""

    ids: Ids
    hashes: Hashes
    postings: npt.NDArray[np.uint32]  # flat: chunk j's rows at [j * n, (j + 1) * n)
    offsets: Ids

    @property
    def rows(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, slots=True)
class _Delta:
    """The brute-force segment at full capacity (memory-mapped) and where its data starts."""

    ids: Ids
    hashes: Hashes
    ids_offset: int
    hashes_offset: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One consistent state to search; replaced, never changed, by every write."""

    base: _Base
    delta_ids: Ids
    delta_hashes: Hashes
    tombstones: Ids


_EMPTY_BASE = _Base(
    ids=np.empty(0, np.int64),
    hashes=np.empty((0, HASH_BYTES), np.uint8),
    postings=np.empty(0, np.uint32),
    offsets=np.zeros(1, np.int64),
)


# --------------------------------------------------------------------------- the index


class PdqIndex:
    """A persistent, incrementally updated near-duplicate index of 256-bit PDQ hashes.

    Open one with ``PdqIndex.open(directory)``. Ids are non-negative int64 (database row
    ids). Adding an id that is live replaces its hash (a no-op if the hash is the same).
    One writer at a time; searches may run while one thread writes.
    """

    def __init__(self, directory: Path, manifest: _Manifest) -> None:
        """Use ``PdqIndex.open``; this maps the state ``manifest`` describes.

        Raises ``IndexCorruptError`` naming the first file that does not fit.
        """
        self._directory = directory
        self._lock = threading.Lock()
        self._manifest = manifest
        self._delta = _load_delta(directory, manifest)
        self._delta_rows: dict[int, int] = {}
        self._snapshot = self._snapshot_of(
            manifest, _load_base(directory, manifest), _load_tombstones(directory, manifest)
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
        manifest = _read_manifest(directory)
        for _ in range(2):
            try:
                return cls(directory, manifest)
            except IndexCorruptError:
                # A writer may have replaced the state while we read it: read it again.
                latest = _read_manifest(directory)
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
        manifest = _Manifest(
            generation=_next_generation(directory), max_id=int(ids_.max(initial=-1))
        )
        manifest = _write_base(directory, manifest, ids_, hashes_)
        _write_manifest(directory, manifest)
        _remove_unreferenced(directory, manifest)
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
            _write_manifest(self._directory, updated)
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
            manifest = _Manifest(generation=self._manifest.generation + 1)
            _write_manifest(self._directory, manifest)
            self._delta, self._delta_rows = None, {}
            self._base_changed(manifest)

    # ----------------------------------------------------------------- internals

    def _snapshot_of(self, manifest: _Manifest, base: _Base, tombstones: Ids) -> _Snapshot:
        """The searchable view of ``manifest`` given its mapped parts."""
        delta, rows = self._delta, manifest.delta_rows
        if delta is None:
            return _Snapshot(base, _EMPTY_BASE.ids, _EMPTY_BASE.hashes, tombstones)
        return _Snapshot(base, delta.ids[:rows], delta.hashes[:rows], tombstones)

    def _switch(self, manifest: _Manifest, tombstones: Ids) -> None:
        """Serve ``manifest`` (already written) with the same base and delta files."""
        _remove_unreferenced(self._directory, manifest)
        self._manifest = manifest
        self._snapshot = self._snapshot_of(manifest, self._snapshot.base, tombstones)

    def _base_changed(self, manifest: _Manifest) -> None:
        """Serve ``manifest`` (already written, a new base and no delta or tombstones)."""
        _remove_unreferenced(self._directory, manifest)
        base = _load_base(self._directory, manifest)
        self._manifest = manifest
        self._snapshot = self._snapshot_of(manifest, base, _EMPTY_BASE.ids)

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
        _write_array(self._directory / _tombstone_file(generation), tombstones)
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
            for part, dtype, shape in _delta_parts(capacity):
                _write_preallocated(self._directory / _delta_file(generation, part), dtype, shape)
            delta = _open_delta(self._directory, generation, capacity)
        start = manifest.delta_rows
        _write_at(
            self._directory / _delta_file(delta_generation, "ids"),
            delta.ids_offset + start * 8,
            ids.astype("<i8").tobytes(),
        )
        _write_at(
            self._directory / _delta_file(delta_generation, "hashes"),
            delta.hashes_offset + start * HASH_BYTES,
            hashes.tobytes(),
        )
        tombstones = self._snapshot.tombstones
        if dead.shape[0]:
            tombstones = self._write_tombstones(dead, generation)
            updated = replace(
                updated,
                tombstone_generation=generation,
                tombstone_rows=int(tombstones.shape[0]),
            )
        _write_manifest(self._directory, updated)
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
        manifest = _Manifest(generation=self._manifest.generation + 1, max_id=max_id)
        manifest = _write_base(
            self._directory, manifest, np.concatenate(all_ids), np.concatenate(all_hashes)
        )
        _write_manifest(self._directory, manifest)
        self._delta, self._delta_rows = None, {}
        self._base_changed(manifest)


_Matches = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint16]]


# --------------------------------------------------------------------------- search


def _search_base(base: _Base, words: Words, radius: int, first: int) -> Iterator[_Matches]:
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


# --------------------------------------------------------------------------- files


def _read_manifest(directory: Path) -> _Manifest:
    """The manifest in ``directory``; an empty state if there is none."""
    path = directory / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _Manifest()
    except OSError as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise IndexCorruptError(f"is not valid JSON ({error})", path=path) from error
    return _Manifest.from_json(data, path)


def _next_generation(directory: Path) -> int:
    """A generation above the manifest's and above every index file in the folder."""
    highest = 0
    with contextlib.suppress(IndexCorruptError):
        highest = _read_manifest(directory).generation
    for path in directory.iterdir():
        match = re.match(r"^(?:base|delta|tombstones)-(\d+)\.", path.name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def _load_array(path: Path, dtype: str, shape: tuple[int, ...]) -> tuple[Any, int]:
    """Memory-map one ``.npy`` and check it; return it and where its data starts.

    The map is returned as a plain ``ndarray`` view (``np.memmap`` adds overhead to every
    operation). Raises ``IndexCorruptError`` naming the file.
    """
    try:
        array = np.load(path, mmap_mode="r" if all(shape) else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise IndexCorruptError(
            f"holds {array.dtype} {array.shape}, the manifest expects {np.dtype(dtype)} {shape}",
            path=path,
        )
    return np.asarray(array), int(getattr(array, "offset", 0))


def _load_base(directory: Path, manifest: _Manifest) -> _Base:
    """Map the base segment. Raises ``IndexCorruptError``."""
    generation, rows = manifest.base_generation, manifest.base_rows
    if generation is None:
        return _EMPTY_BASE
    ids, _ = _load_array(directory / _base_file(generation, "ids"), "<i8", (rows,))
    hashes, _ = _load_array(directory / _base_file(generation, "hashes"), "u1", (rows, HASH_BYTES))
    postings, _ = _load_array(directory / _base_file(generation, "postings"), "<u4", (CHUNKS, rows))
    offsets_path = directory / _base_file(generation, "offsets")
    offsets, _ = _load_array(offsets_path, "<i8", (CHUNKS * BUCKETS + 1,))
    if offsets[0] != 0 or offsets[-1] != CHUNKS * rows:
        raise IndexCorruptError("bucket offsets do not span the postings", path=offsets_path)
    return _Base(ids=ids, hashes=hashes, postings=postings.reshape(-1), offsets=offsets)


def _delta_parts(capacity: int) -> list[tuple[str, str, tuple[int, ...]]]:
    return [("ids", "<i8", (capacity,)), ("hashes", "u1", (capacity, HASH_BYTES))]


def _load_delta(directory: Path, manifest: _Manifest) -> _Delta | None:
    """Map the delta segment at full capacity. Raises ``IndexCorruptError``."""
    generation = manifest.delta_generation
    if generation is None:
        return None
    return _open_delta(directory, generation, manifest.delta_capacity)


def _open_delta(directory: Path, generation: int, capacity: int) -> _Delta:
    """Map the delta files of ``generation``. Raises ``IndexCorruptError``."""
    (ids, ids_offset), (hashes, hashes_offset) = (
        _load_array(directory / _delta_file(generation, part), dtype, shape)
        for part, dtype, shape in _delta_parts(capacity)
    )
    return _Delta(ids=ids, hashes=hashes, ids_offset=ids_offset, hashes_offset=hashes_offset)


def _load_tombstones(directory: Path, manifest: _Manifest) -> Ids:
    """Read the tombstones (small: not mapped). Raises ``IndexCorruptError``."""
    generation = manifest.tombstone_generation
    if generation is None:
        return _EMPTY_BASE.ids
    path = directory / _tombstone_file(generation)
    tombstones = np.array(_load_array(path, "<i8", (manifest.tombstone_rows,))[0])
    limit = manifest.base_rows + manifest.delta_rows
    if (np.diff(tombstones) <= 0).any() or tombstones[0] < 0 or tombstones[-1] >= limit:
        raise IndexCorruptError("row positions are not ascending and in range", path=path)
    result: Ids = tombstones
    return result


def _write_base(directory: Path, manifest: _Manifest, ids: Ids, hashes: Hashes) -> _Manifest:
    """Write base files of these rows (unique ids) for ``manifest.generation``.

    Returns ``manifest`` naming them; the caller writes it.
    """
    generation = manifest.generation
    rows = int(ids.shape[0])
    if rows == 0:
        return manifest
    order = np.argsort(ids, kind="stable")
    ids = np.take(ids, order)
    hashes = np.take(hashes, order, axis=0)
    _write_array(directory / _base_file(generation, "ids"), ids.astype("<i8"))
    _write_array(directory / _base_file(generation, "hashes"), hashes)
    keys = hashes.view("<u2")
    offsets = np.zeros(CHUNKS * BUCKETS + 1, "<i8")
    postings_path = directory / _base_file(generation, "postings")
    temporary = _temporary(postings_path)
    postings = np.lib.format.open_memmap(temporary, mode="w+", dtype="<u4", shape=(CHUNKS, rows))
    for chunk in range(CHUNKS):
        key = np.ascontiguousarray(keys[:, chunk])
        postings[chunk] = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=BUCKETS)
        begin = chunk * BUCKETS
        offsets[begin + 1 : begin + BUCKETS + 1] = chunk * rows + np.cumsum(counts)
    postings.flush()
    del postings
    _fsync_file(temporary)
    os.replace(temporary, postings_path)
    _write_array(directory / _base_file(generation, "offsets"), offsets)
    return replace(manifest, base_generation=generation, base_rows=rows)


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _write_array(path: Path, array: npt.NDArray[Any]) -> None:
    """Write one ``.npy`` under a temporary name, fsync it and rename it into place."""
    temporary = _temporary(path)
    with open(temporary, "wb") as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _write_preallocated(path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    """Create a zero-filled (sparse) ``.npy`` of ``shape``, atomically."""
    temporary = _temporary(path)
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
    del array
    _fsync_file(temporary)
    os.replace(temporary, path)


def _write_at(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes at ``offset`` of an existing file and fsync it."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_manifest(directory: Path, manifest: _Manifest) -> None:
    """Replace ``manifest.json`` atomically and durably, after every rename before it."""
    _fsync_directory(directory)
    path = directory / MANIFEST
    temporary = _temporary(path)
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_json(), handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(directory)


def _remove_unreferenced(directory: Path, manifest: _Manifest) -> None:
    """Delete index files and temporaries that ``manifest`` does not name."""
    keep = manifest.files()
    for path in directory.iterdir():
        name = path.name
        if (_FILE.match(name) and name not in keep) or _TEMP.match(name):
            path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
