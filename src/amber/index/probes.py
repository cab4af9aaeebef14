"""Which buckets a range query probes so that nothing within the radius is missed.

A base cuts each hash into ``m`` chunks (one per table; see ``kernels.py``). If two hashes
are within ``r`` bits and table ``j`` is probed at ``t_j`` flips (every stored hash whose
chunk ``j`` is within ``t_j`` bits of the query's), then as long as

    sum over j of (t_j + 1) >= r + 1

some table finds the hash: were every chunk ``t_j + 1`` or more bits away, the hashes
would differ in at least ``r + 1`` bits (the generalised pigeonhole principle; chunks
need not cover all 256 bits, bits outside them only add distance). ``t_j = -1`` skips a
table. The plan spends those ``r + 1`` units where an expected-cost model says they
cost least, and falls back to scanning every row when that is cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np
import numpy.typing as npt

from amber.index.layout import (
    HASH_BYTES,
    MAX_BUCKET_BITS,
    MAX_TABLES,
    RULE_BUCKET_BITS,
    SUFFIX_BITS,
    Tables,
)

# Relative costs, measured on the kernels (nanoseconds, roughly): reading a bucket's
# bounds and first postings, one posting, verifying one candidate, scanning one row.
PROBE_COST = 40.0
POSTING_COST = 4.0
CANDIDATE_COST = 45.0
SCAN_COST = 1.5

#: The radius large bases are shaped for: PDQ's usual match threshold.
SHAPE_RADIUS = 31
#: Most chunk bits a posting keeps beyond the bucket key (``Tables.valid``).
MAX_SUFFIX_BITS = 8

Array = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """Flips per table (-1: skip) and the bucket-key masks of each flip count."""

    thresholds: Array
    masks: Array  # every bucket-key mask of at most max(thresholds) bits, by bit count
    mask_flips: Array  # bits set in each mask
    mask_ends: Array  # masks[:mask_ends[t]] are those of at most t bits


@lru_cache(maxsize=64)
def plan(tables: Tables, rows: int, radius: int, scan_cost: float = SCAN_COST) -> ProbePlan | None:
    """The cheapest exact probe plan for ``radius`` over a base of ``rows``.

    ``None`` when scanning every row is expected to cost less.
    """
    spent = _spend(tables, rows, radius)
    if spent is None or spent[1] >= scan_cost * rows:
        return None
    thresholds = spent[0]
    masks, flips, ends = _masks(tables.bucket_bits, min(max(thresholds), tables.bucket_bits))
    ends = np.concatenate([ends, np.full(max(thresholds) + 1 - ends.shape[0], ends[-1])])
    return ProbePlan(np.array(thresholds, np.int64), masks, flips, ends)


@lru_cache(maxsize=16)
def cheapest_tables(rows: int) -> Tables:
    """The shape with the lowest expected probe cost at ``SHAPE_RADIUS`` over ``rows``.

    Bucket keys of ``RULE_BUCKET_BITS`` to ``MAX_BUCKET_BITS`` bits, 3 to 8 suffix bits,
    as many tables as the 256 bits hold (at most 16). For bases past about 12 million
    rows (``Tables.for_rows``); it takes a few milliseconds.
    """
    best: tuple[float, Tables] | None = None
    for bucket_bits in range(RULE_BUCKET_BITS, MAX_BUCKET_BITS + 1):
        for suffix_bits in range(SUFFIX_BITS, MAX_SUFFIX_BITS + 1):
            table_bits = bucket_bits + suffix_bits
            tables = Tables(min(HASH_BYTES * 8 // table_bits, MAX_TABLES), table_bits, bucket_bits)
            spent = _spend(tables, rows, SHAPE_RADIUS)
            if spent is not None and (best is None or spent[1] < best[0]):
                best = (spent[1], tables)
    if best is None:  # unreachable: 9 tables of at most 32 bits always cover radius 31
        return Tables(MAX_TABLES, SUFFIX_BITS + RULE_BUCKET_BITS, RULE_BUCKET_BITS)
    return best[1]


def _spend(tables: Tables, rows: int, radius: int) -> tuple[list[int], float] | None:
    """Flips per table that cover ``radius`` at the least expected cost, and that cost.

    Spends the ``radius + 1`` units one at a time where the next flip adds least;
    ``None`` when the chunks cover fewer bits than the radius (only a scan is exact).
    """
    bucket_rows = rows / (1 << tables.bucket_bits)
    chunk_rows = rows / (1 << tables.table_bits)

    def cost(flips: int) -> float:
        """Expected cost of probing one table at ``flips``."""
        if flips < 0:
            return 0.0
        buckets = sum(comb(tables.bucket_bits, f) for f in range(flips + 1))
        chunks = sum(comb(tables.table_bits, f) for f in range(flips + 1))
        probing = buckets * (PROBE_COST + POSTING_COST * bucket_rows)
        return probing + CANDIDATE_COST * chunks * chunk_rows

    thresholds = [-1] * tables.tables
    for _ in range(radius + 1):
        best = min(
            (j for j in range(tables.tables) if thresholds[j] < tables.table_bits),
            key=lambda j: cost(thresholds[j] + 1) - cost(thresholds[j]),
            default=None,
        )
        if best is None:
            return None
        thresholds[best] += 1
    return thresholds, sum(cost(t) for t in thresholds)


@lru_cache(maxsize=16)
def _masks(bits: int, most: int) -> tuple[Array, Array, Array]:
    """Every ``bits``-bit mask with at most ``most`` bits set, by bit count; see ``ProbePlan``."""
    masks: list[int] = []
    flips: list[int] = []
    ends: list[int] = []
    for count in range(most + 1):
        for chosen in combinations(range(bits), count):
            masks.append(sum(1 << bit for bit in chosen))
            flips.append(count)
        ends.append(len(masks))
    arrays = np.array(masks, np.int64), np.array(flips, np.int64), np.array(ends, np.int64)
    for array in arrays:
        array.setflags(write=False)
    return arrays
