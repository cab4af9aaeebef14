"""An index of binary local-feature descriptors (ORB's 256 bits): cells of near rows.

Rows are ``entry_signals`` rows of one keypoint each (``amber.signals.local``). A search
gives, for each query keypoint, the nearest ``MAX_HITS`` rows within the radius: a
descriptor near many more rows than that (a flat patch, a repeated texture) says nothing
about which photo it comes from.

Up to ``FLAT_LIMIT`` rows every row is compared: exact, as ``BruteForceIndex`` is.
Beyond, rows are grouped in cells of about ``CELL_ROWS``, each row in the cell of its
nearest *centroid*, and a query compares only the rows of the ``nprobe`` cells whose
centroids are nearest to it: a near descriptor in another cell is missed, which
verification, counting many pairs, tolerates. The centroids are rows drawn at random
(a cell then holds about as many rows wherever the descriptors are dense) in two
levels: ``coarse`` centroids, and under each ``fine`` ones drawn from the rows nearest
to it; a row goes to the nearest fine centroid under its nearest coarse one, and a query
looks under its ``coarse_probes`` nearest coarse centroids. Finding the cells thus costs
a few thousand comparisons instead of one per cell (faiss's IVF compares every centroid,
and its HNSW quantizer was slower still), and the rows of a cell lie side by side, so
a query reads them in order. Measured in ``benchmarks/local_scale.py``: 100,000 banked
photos (50 million rows) need 40 bytes a row (20 KB a photo, 2 GB).

Rows added after the cells were drawn go to a second, smaller set of the same cells (the
*delta*), searched beside the first and merged into it when it reaches an eighth of its
size; the centroids are drawn anew when the rows have grown fourfold. A removed row is
marked dead in place (its id set to -1) and dropped when the cells are next rebuilt.

The index lives in memory, filled from the database by the matcher in each process. The
scans are compiled with numba (``amber.index.kernels``' popcount), one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

from amber.index.kernels import popcount
from amber.index.signal import Hit, SignalIndex, _check_radius

if TYPE_CHECKING:
    from amber.signals.base import SignalType

Ids = npt.NDArray[np.int64]
#: Descriptors as four uint64 words a row.
Words = npt.NDArray[np.uint64]

#: Bits in a descriptor.
BITS: Final = 256
#: Rows compared one by one at most; more are put in cells.
FLAT_LIMIT: Final = 50_000
#: Rows a cell holds on average (the number of cells is the nearest power of two).
CELL_ROWS: Final = 768
#: Nearest rows kept for one query keypoint.
MAX_HITS: Final = 8
#: Cells a query reads, and the coarse centroids it looks under to choose them. At 100,000
#: banked photos (``benchmarks/local_scale.py``) a query image costs 25 ms at 4 cells
#: (recall 0.78), 39 at 8 (0.87), 68 at 16 (0.91): the scan is bound by the memory it
#: reads; the policy's ``[signals.orb] cells`` sets it. 4 coarse centroids, not 8: recall
#: 0.78 instead of 0.73 at 4 cells, 0.91 instead of 0.90 at 16, and 4 ms less (the fine
#: centroids' biases are evened out under each coarse one, so the nearest fine centroid
#: under a far coarse one is a worse cell than it looks).
NPROBE: Final = 4
COARSE_PROBES: Final = 4
#: Rows drawn a cell to even out the cells, and the rounds of evening out.
SAMPLE_ROWS: Final = 16
BALANCE_ROUNDS: Final = 12
#: The delta is merged into the cells when it holds this share of their rows.
DELTA_SHARE: Final = 8
#: Larger than any distance: an empty slot of the nearest rows.
_FAR: Final = BITS + 1


class BinaryIndex(SignalIndex):
    """Keypoint descriptors of one signal type, found by Hamming distance."""

    max_hits = MAX_HITS

    def __init__(
        self, signal_type: SignalType, *, nprobe: int = NPROBE, coarse_probes: int = COARSE_PROBES
    ) -> None:
        self.signal_type = signal_type
        self.nprobe = nprobe
        self.coarse_probes = coarse_probes
        self._max_id = -1
        self._live = 0
        self._centroids: _Centroids | None = None  # None: flat, one cell
        # Two sets of cells, each rows in cell order with offsets: the main one and the delta.
        self._main = _Cells.empty(1)
        self._delta = _Cells.empty(1)
        self._new_ids: list[Ids] = []
        self._new_codes: list[npt.NDArray[np.uint8]] = []

    @property
    def max_id(self) -> int:
        return self._max_id

    def __len__(self) -> int:
        return self._live + sum(len(i) for i in self._new_ids)

    @property
    def cells(self) -> int:
        """How many cells the rows are grouped in (1: every row is compared)."""
        return 1 if self._centroids is None else len(self._centroids.fine)

    def nbytes(self) -> int:
        """Bytes of the arrays the index holds."""
        arrays = [*self._main.arrays(), *self._delta.arrays(), *self._new_ids, *self._new_codes]
        if self._centroids is not None:
            arrays += [self._centroids.coarse, self._centroids.fine]
        return sum(a.nbytes for a in arrays)

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        from amber.errors import UserError
        from amber.signals.local import descriptors

        if len(ids) != len(values):
            raise UserError(f"{len(ids)} ids for {len(values)} values; give one id per value")
        if not len(ids):
            return
        wanted = np.asarray(ids, dtype=np.int64)
        if int(wanted.min()) <= self._max_id:  # a row id already held takes its new value
            self._settle()
            self._kill(wanted)
        self._new_ids.append(wanted)
        self._new_codes.append(descriptors(values))
        self._max_id = max(self._max_id, int(wanted.max()))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids) and len(self):
            self._settle()
            self._kill(np.asarray(ids, dtype=np.int64))

    def clear(self) -> None:
        self.__init__(  # type: ignore[misc]
            self.signal_type, nprobe=self.nprobe, coarse_probes=self.coarse_probes
        )

    def search(self, values: Sequence[str], radius: int) -> list[list[Hit]]:
        _check_radius(radius)
        found, distances = self._nearest(values, MAX_HITS)
        distances[distances > radius] = _FAR
        return _hits(found, distances)

    def nearest(self, values: Sequence[str], k: int) -> list[list[Hit]]:
        return _hits(*self._nearest(values, k))

    def _nearest(self, values: Sequence[str], k: int) -> tuple[Ids, Ids]:
        """Each value's ``k`` nearest rows and their distances (``_FAR``: none)."""
        from amber.signals.local import descriptors

        self._settle()
        k = max(k, 0)
        distances = np.full((len(values), k), _FAR, dtype=np.int64)
        found = np.full((len(values), k), -1, dtype=np.int64)
        if not self._live or not values or not k:
            return found, distances
        queries = descriptors(values).view(np.uint64)
        centroids = self._centroids
        if centroids is None:
            cells = np.zeros((len(values), 1), dtype=np.int64)
        else:
            cells = _probe(
                queries,
                centroids.coarse,
                centroids.coarse_bias,
                centroids.fine,
                centroids.fine_bias,
                centroids.per,
                min(self.coarse_probes, len(centroids.coarse)),
                min(self.nprobe, len(centroids.fine)),
            )
        for part in (self._main, self._delta):
            if len(part.ids):
                _scan(queries, cells, part.offsets, part.codes, part.ids, distances, found)
        return found, distances

    # ------------------------------------------------------------------ upkeep

    def _kill(self, wanted: Ids) -> None:
        """Mark the held rows of ``wanted`` ids dead."""
        for part in (self._main, self._delta):
            if len(part.ids):
                dead = np.isin(part.ids, wanted)
                if dead.any():
                    part.ids[dead] = -1
                    self._live -= int(dead.sum())

    def _settle(self) -> None:
        """Take the rows added since the last search into the cells: into the delta, or
        all rows into new cells when they have outgrown the centroids (or when a quarter
        of the rows held are dead)."""
        if not self._new_ids and not self._dead_share_high():
            return
        new_ids = np.concatenate(self._new_ids) if self._new_ids else np.empty(0, np.int64)
        new_codes = (
            np.concatenate(self._new_codes).view(np.uint64)
            if self._new_codes
            else np.empty((0, 4), np.uint64)
        )
        self._new_ids, self._new_codes = [], []
        total = self._live + len(new_ids)
        centroids = self._centroids
        if centroids is None or total >= 4 * centroids.rows or self._dead_share_high():
            ids, codes = self._held()
            ids, codes = np.concatenate([ids, new_ids]), np.concatenate([codes, new_codes])
            self._centroids = _draw_centroids(codes) if len(ids) > FLAT_LIMIT else None
            self._main, self._delta = self._group(ids, codes), _Cells.empty(self.cells)
            self._live = len(ids)
            return
        delta_ids, delta_codes = self._delta.live()
        ids = np.concatenate([delta_ids, new_ids])
        codes = np.concatenate([delta_codes, new_codes])
        self._live += len(new_ids)
        if len(ids) * DELTA_SHARE >= len(self._main.ids):
            main_ids, main_codes = self._main.live()
            ids, codes = np.concatenate([main_ids, ids]), np.concatenate([main_codes, codes])
            self._main, self._delta = self._group(ids, codes), _Cells.empty(self.cells)
        else:
            self._delta = self._group(ids, codes)

    def _dead_share_high(self) -> bool:
        held = len(self._main.ids) + len(self._delta.ids)
        return held > 0 and (held - self._live) * 4 > held

    def _held(self) -> tuple[Ids, Words]:
        main_ids, main_codes = self._main.live()
        delta_ids, delta_codes = self._delta.live()
        return np.concatenate([main_ids, delta_ids]), np.concatenate([main_codes, delta_codes])

    def _group(self, ids: Ids, codes: Words) -> _Cells:
        """Rows in cell order, with each cell's offsets."""
        count, centroids = self.cells, self._centroids
        if centroids is None:
            return _Cells(np.array([0, len(ids)], dtype=np.int64), ids.copy(), codes.copy())
        under = _assign_coarse(codes, centroids.coarse, centroids.coarse_bias)
        cell = _assign_fine(codes, under, centroids.fine, centroids.fine_bias, centroids.per)
        order = np.argsort(cell, kind="stable")
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell, minlength=count), out=offsets[1:])
        return _Cells(offsets, ids[order], codes[order])


def _hits(found: Ids, distances: Ids) -> list[list[Hit]]:
    """Rows and distances as lists of hits, slots at ``_FAR`` left out."""
    full = (distances[:, -1] < _FAR).tolist() if distances.shape[1] else []
    return (
        [
            list(zip(row_i, row_d, strict=True))
            if whole
            else [(i, d) for i, d in zip(row_i, row_d, strict=True) if d < _FAR]
            for row_i, row_d, whole in zip(found.tolist(), distances.tolist(), full, strict=True)
        ]
        if distances.shape[1]
        else [[] for _ in range(len(found))]
    )


@dataclass(frozen=True, slots=True)
class _Centroids:
    """Cell ``c * per + f`` is fine centroid ``f`` under coarse centroid ``c``; drawn for
    ``rows`` rows. A row's distance to a centroid is its Hamming distance plus the
    centroid's bias (``coarse_bias``, ``fine_bias``)."""

    coarse: Words
    coarse_bias: npt.NDArray[np.float32]
    fine: Words
    fine_bias: npt.NDArray[np.float32]
    per: int
    rows: int


def _draw_centroids(codes: Words) -> _Centroids:
    """Centroids for ``codes``: rows drawn at random, in two levels, each given a bias
    that evens out how many rows it gets.

    Without the bias a few centroids near the middle of the descriptors take most rows
    (in 256 dimensions some points are near everything): on ORB keypoints of generated
    photos the largest cell held 300 times the median one, and the queries landed there.
    """
    rng = np.random.default_rng(0)
    levels = max(2, round(np.log2(len(codes) / CELL_ROWS)))
    coarse_count, per = 1 << ((levels + 1) // 2), 1 << (levels // 2)
    size = min(len(codes), coarse_count * per * SAMPLE_ROWS)
    sample = codes[np.sort(rng.choice(len(codes), size, replace=False))]
    coarse = sample[rng.choice(len(sample), coarse_count, replace=False)]
    coarse_bias = np.zeros(coarse_count, dtype=np.float32)
    even = np.full(coarse_count, len(sample) / coarse_count)
    for _ in range(BALANCE_ROUNDS):
        under = _assign_coarse(sample, coarse, coarse_bias)
        _even_out(coarse_bias, np.bincount(under, minlength=coarse_count), even)
    under = _assign_coarse(sample, coarse, coarse_bias)
    fine = np.empty((coarse_count * per, 4), dtype=np.uint64)
    for c in range(coarse_count):
        members = sample[under == c]
        if not len(members):
            members = coarse[c : c + 1]
        fine[c * per : (c + 1) * per] = members[
            rng.choice(len(members), per, replace=len(members) < per)
        ]
    fine_bias = np.zeros(coarse_count * per, dtype=np.float32)
    wanted = np.repeat(np.bincount(under, minlength=coarse_count) / per, per)
    for _ in range(BALANCE_ROUNDS):
        cell = _assign_fine(sample, under, fine, fine_bias, per)
        _even_out(fine_bias, np.bincount(cell, minlength=len(fine)), wanted)
    return _Centroids(coarse, coarse_bias, fine, fine_bias, per, len(codes))


def _even_out(bias: npt.NDArray[np.float32], counts: Ids, wanted: npt.NDArray[Any]) -> None:
    """Raise the bias of centroids with more rows than ``wanted``, lower the others'."""
    ratio = (counts + 1) / np.maximum(wanted, 1.0)
    bias += np.clip(np.log2(ratio), -2.0, 2.0).astype(np.float32)


class _Cells:
    """Rows grouped by cell: ``ids`` (-1: dead) and ``codes`` (4 words) in cell order,
    cell ``c``'s rows at ``offsets[c]:offsets[c + 1]``."""

    __slots__ = ("codes", "ids", "offsets")

    def __init__(self, offsets: Ids, ids: Ids, codes: Words) -> None:
        self.offsets, self.ids, self.codes = offsets, ids, codes

    @classmethod
    def empty(cls, cells: int) -> _Cells:
        return cls(
            np.zeros(cells + 1, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            np.empty((0, 4), dtype=np.uint64),
        )

    def arrays(self) -> list[np.ndarray]:
        return [self.offsets, self.ids, self.codes]

    def live(self) -> tuple[Ids, Words]:
        alive = self.ids >= 0
        return self.ids[alive], self.codes[alive]


# ---------------------------------------------------------------------- compiled loops


def _compiled(function: Any) -> Any:
    return njit(cache=True, nogil=True)(function)


@njit(cache=True, inline="always")
def _distance(a: Any, i: int, b: Any, j: int) -> Any:
    return np.int64(
        popcount(a[i, 0] ^ b[j, 0])
        + popcount(a[i, 1] ^ b[j, 1])
        + popcount(a[i, 2] ^ b[j, 2])
        + popcount(a[i, 3] ^ b[j, 3])
    )


@_compiled
def _assign_coarse(codes: Any, coarse: Any, bias: Any) -> Any:  # pragma: no cover
    """The nearest coarse centroid of each row (bias included; the first of equals)."""
    out = np.empty(codes.shape[0], dtype=np.int64)
    for r in range(codes.shape[0]):
        best, which = np.inf, 0
        for c in range(coarse.shape[0]):
            d = _distance(codes, r, coarse, c) + bias[c]
            if d < best:
                best, which = d, c
        out[r] = which
    return out


@_compiled
def _assign_fine(codes: Any, under: Any, fine: Any, bias: Any, per: int) -> Any:  # pragma: no cover
    """The nearest fine centroid of each row under its coarse centroid ``under``."""
    out = np.empty(codes.shape[0], dtype=np.int64)
    for r in range(codes.shape[0]):
        best, which = np.inf, 0
        for f in range(under[r] * per, (under[r] + 1) * per):
            d = _distance(codes, r, fine, f) + bias[f]
            if d < best:
                best, which = d, f
        out[r] = which
    return out


@_compiled
def _keep(values: Any, items: Any, size: int, value: float, item: int) -> int:  # pragma: no cover
    """Insert ``(value, item)`` into the ascending ``values``/``items`` holding ``size``
    of at most ``len(values)``; returns the new size."""
    if size == len(values) and value >= values[size - 1]:
        return size
    slot = size if size < len(values) else size - 1
    while slot > 0 and values[slot - 1] > value:
        values[slot], items[slot] = values[slot - 1], items[slot - 1]
        slot -= 1
    values[slot], items[slot] = value, item
    return min(size + 1, len(values))


@_compiled
def _probe(
    queries: Any,
    coarse: Any,
    coarse_bias: Any,
    fine: Any,
    fine_bias: Any,
    per: int,
    coarse_probes: int,
    nprobe: int,
) -> Any:  # pragma: no cover - compiled
    """Each query's ``nprobe`` cells: the nearest fine centroids under its
    ``coarse_probes`` nearest coarse ones."""
    out = np.empty((queries.shape[0], nprobe), dtype=np.int64)
    top_d = np.empty(coarse_probes, dtype=np.float64)
    top = np.empty(coarse_probes, dtype=np.int64)
    cell_d = np.empty(nprobe, dtype=np.float64)
    for q in range(queries.shape[0]):
        kept = 0
        for c in range(coarse.shape[0]):
            kept = _keep(top_d, top, kept, _distance(queries, q, coarse, c) + coarse_bias[c], c)
        chosen = 0
        for t in range(kept):
            for f in range(top[t] * per, (top[t] + 1) * per):
                d = _distance(queries, q, fine, f) + fine_bias[f]
                chosen = _keep(cell_d, out[q], chosen, d, f)
    return out


@_compiled
def _scan(
    queries: Any, cells: Any, offsets: Any, codes: Any, ids: Any, distances: Any, found: Any
) -> None:  # pragma: no cover - compiled
    """Update each query's nearest rows (``distances`` and ``found``, ascending by
    distance then row id) with the live rows of its cells."""
    k = distances.shape[1]
    for q in range(queries.shape[0]):
        worst_d, worst_i = distances[q, k - 1], found[q, k - 1]
        for p in range(cells.shape[1]):
            c = cells[q, p]
            for r in range(offsets[c], offsets[c + 1]):
                d = _distance(queries, q, codes, r)
                if d > worst_d:
                    continue
                i = ids[r]
                if i < 0 or (d == worst_d and i >= worst_i):  # dead, or not nearer
                    continue
                slot = k - 1
                while slot > 0 and (
                    distances[q, slot - 1] > d
                    or (distances[q, slot - 1] == d and found[q, slot - 1] > i)
                ):
                    distances[q, slot] = distances[q, slot - 1]
                    found[q, slot] = found[q, slot - 1]
                    slot -= 1
                distances[q, slot], found[q, slot] = d, i
                worst_d, worst_i = distances[q, k - 1], found[q, k - 1]
