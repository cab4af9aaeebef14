"""The compiled loops of the PDQ index: building the bucket tables, probing them, scanning.

Compiled with numba on first use and cached beside this file (``cache=True``): compiling
takes 10-20 seconds once per amber and numba version; later processes only import numba
and load the cache (0.2 to 1.5 seconds, on their first search or build). Nothing here
does I/O: the arrays may be memory-mapped files, read as they are.

Hashes are read as four little-endian uint64 words; bit ``i`` of a hash is bit ``i % 64``
of word ``i // 64``. Table ``j`` holds the ``table_bits`` bits starting at bit
``j * table_bits``: its low ``bucket_bits`` pick the bucket, the rest (the *suffix*) are
stored in each posting beside the row, so a posting whose chunk is too far from the
query's is dropped before its hash is read. Postings are bit-packed, ``row_bits +
suffix_bits`` bits each, table after table, each table's postings ordered by bucket.
Table 0 has none: a base's rows are stored in its bucket order (``bucket_order``), so
each of its buckets is a run of rows, whose hashes are checked in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

#: Status codes returned by ``search_tables`` when a file does not fit its manifest.
OK, BAD_OFFSETS, BAD_POSTINGS = 0, 1, 2

_ONE = np.uint64(1)
_WORD = np.uint64(64)

_Function = TypeVar("_Function", bound=Callable[..., Any])


def _compiled(function: _Function) -> _Function:
    """Compile with numba on first call, caching the machine code beside this file."""
    return cast(_Function, njit(cache=True, nogil=True)(function))


def _inlined(function: _Function) -> _Function:
    """Like ``_compiled``, for a small helper inlined into its callers."""
    return cast(_Function, njit(cache=True, inline="always")(function))


def _popcount(typingctx: Any, value: Any) -> Any:
    """Set bits of a uint64 (one ``popcnt`` instruction): typing and code generation."""
    if value != types.uint64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


#: ``popcount(x)``: the set bits of a uint64, inside compiled code.
popcount = cast(Callable[[Any], Any], intrinsic(_popcount))


@_inlined
def chunk(w0: Any, w1: Any, w2: Any, w3: Any, first: int, bits: int) -> Any:
    """Bits ``first .. first + bits - 1`` (``bits`` <= 32) of a hash, as a uint64."""
    word = first >> 6
    shift = np.uint64(first & 63)
    if word == 0:
        low, high = w0, w1
    elif word == 1:
        low, high = w1, w2
    elif word == 2:
        low, high = w2, w3
    else:
        low, high = w3, np.uint64(0)
    value = low >> shift
    if shift != 0:
        value |= high << (_WORD - shift)
    return value & ((_ONE << np.uint64(bits)) - _ONE)


@_inlined
def _read_bits(words: Any, bit: int, width: int) -> Any:
    """The ``width``-bit value (``width`` < 64) at bit ``bit`` of a packed uint64 array."""
    word = bit >> 6
    shift = np.uint64(bit & 63)
    # Branch-free: the next word shifted by 64 - shift, in two steps so a shift of 64
    # (undefined) never happens; the array has one spare word at the end.
    value = (words[word] >> shift) | ((words[word + 1] << _ONE) << (np.uint64(63) - shift))
    return value & ((_ONE << np.uint64(width)) - _ONE)


@_compiled
def bucket_order(hashes: Any, sequence: Any, bucket_bits: int, order: Any) -> None:
    """Fill ``order`` with the rows of ``sequence`` sorted (stably) by table 0's bucket key.

    ``hashes`` is ``(n, 4)`` uint64, ``sequence`` and ``order`` ``(n,)``: a counting sort
    (the low ``bucket_bits`` bits of each hash), so rows that share a bucket of table 0
    end up side by side, in ``sequence``'s order.
    """
    buckets = 1 << bucket_bits
    bucket_mask = np.uint64(buckets - 1)
    fill = np.zeros(buckets + 1, np.int64)
    for at in range(sequence.shape[0]):
        fill[np.int64(hashes[sequence[at], 0] & bucket_mask) + 1] += 1
    for bucket in range(buckets):
        fill[bucket + 1] += fill[bucket]
    for at in range(sequence.shape[0]):
        row = sequence[at]
        slot = np.int64(hashes[row, 0] & bucket_mask)
        order[fill[slot]] = row
        fill[slot] += 1


@_compiled
def build_tables(
    hashes: Any,
    tables: int,
    table_bits: int,
    bucket_bits: int,
    row_bits: int,
    offsets: Any,
    postings: Any,
) -> None:
    """Fill ``offsets`` ``(tables, 2**bucket_bits + 1)`` and zeroed ``postings``.

    ``hashes`` is ``(n, 4)`` uint64, its rows in the bucket order of table 0
    (``bucket_order``), so bucket ``k`` of table 0 is rows ``offsets[0, k]`` to
    ``offsets[0, k + 1]`` and table 0 has no postings. Bucket ``k`` of table ``j >= 1``
    is postings ``(j - 1) * n + offsets[j, k]`` to ``(j - 1) * n + offsets[j, k + 1]``,
    rows ascending.
    """
    rows = hashes.shape[0]
    buckets = 1 << bucket_bits
    bucket_mask = np.uint64(buckets - 1)
    width = row_bits + table_bits - bucket_bits
    keys = np.empty(rows, np.uint32)
    fill = np.empty(buckets, np.int64)
    for table in range(tables):
        first = table * table_bits
        counts = np.zeros(buckets + 1, np.int64)
        for row in range(rows):
            key = chunk(hashes[row, 0], hashes[row, 1], hashes[row, 2], hashes[row, 3],
                        first, table_bits)  # fmt: skip
            keys[row] = np.uint32(key)
            counts[np.int64(key & bucket_mask) + 1] += 1
        for bucket in range(buckets):
            counts[bucket + 1] += counts[bucket]
        for bucket in range(buckets + 1):
            offsets[table, bucket] = counts[bucket]
        if table == 0:
            continue
        for bucket in range(buckets):
            fill[bucket] = counts[bucket]
        for row in range(rows):
            key = np.uint64(keys[row])
            slot = np.int64(key & bucket_mask)
            entry = (table - 1) * rows + fill[slot]
            fill[slot] += 1
            value = np.uint64(row) | ((key >> np.uint64(bucket_bits)) << np.uint64(row_bits))
            bit = entry * width
            word = bit >> 6
            shift = np.uint64(bit & 63)
            postings[word] |= value << shift
            if (bit & 63) + width > 64:
                postings[word + 1] |= value >> (_WORD - shift)


@_compiled
def search_tables(
    queries: Any,
    hashes: Any,
    offsets: Any,
    postings: Any,
    table_bits: int,
    bucket_bits: int,
    row_bits: int,
    thresholds: Any,
    masks: Any,
    mask_flips: Any,
    mask_ends: Any,
    radius: int,
    found: Any,
) -> Any:
    """Every ``(query, row, distance)`` within ``radius`` found by probing the tables.

    Table ``j`` is probed at ``thresholds[j]`` bits (-1: skipped): every bucket whose
    key is within that many flips of the query's, keeping postings whose whole chunk
    is. ``masks[:mask_ends[t]]`` are the bucket-key flips of at most ``t`` bits and
    ``mask_flips`` their bit counts. A row is reported once, by the first table that
    finds it. Matches go into ``found`` (``(capacity, 3)`` int64) as far as it holds
    them. Returns ``(matches, status, touched)``: when ``matches`` exceeds the capacity,
    call again with room for them; ``status`` is ``BAD_OFFSETS`` or ``BAD_POSTINGS`` when
    a file holds a value out of range; ``touched`` only keeps the compiler from dropping
    the loads that warm the cache.
    """
    rows = hashes.shape[0]
    width = row_bits + table_bits - bucket_bits
    bucket_mask = np.uint64((1 << bucket_bits) - 1)
    most = 0
    for table in range(thresholds.shape[0]):
        if thresholds[table] >= 0:
            most = max(most, mask_ends[thresholds[table]])
    starts = np.empty(most, np.int64)
    ends = np.empty(most, np.int64)
    allowed = np.empty(most, np.int64)
    candidates = np.empty(4096, np.int64)
    matches = 0
    touched = np.uint64(0)
    for number in range(queries.shape[0]):
        query = queries[number]
        # One table at a time, in four passes whose loads do not depend on each other, so
        # the CPU overlaps their cache and TLB misses; one table's pages fit in the TLB.
        for table in range(thresholds.shape[0]):
            flips = thresholds[table]
            if flips < 0:
                continue
            key = chunk(query[0], query[1], query[2], query[3], table * table_bits, table_bits)
            probes = mask_ends[flips]
            total = _buckets(
                offsets, table, np.int64(key & bucket_mask), flips, masks, mask_flips, probes,
                rows, starts, ends, allowed,
            )  # fmt: skip
            if total < 0:
                return matches, BAD_OFFSETS, touched
            if table == 0:  # its buckets are runs of rows: check their hashes in place
                touched ^= _touch_runs(hashes, starts, ends, probes)
                matches = _verify_runs(
                    hashes, starts, ends, probes, query, number, key, flips, table_bits, radius,
                    found, matches,
                )  # fmt: skip
                continue
            touched ^= _touch(postings, starts, ends, probes, width)
            if total > candidates.shape[0]:
                candidates = np.empty(2 * total, np.int64)
            count = _gather(
                postings, starts, ends, allowed, probes, key >> np.uint64(bucket_bits), width,
                row_bits, candidates,
            )  # fmt: skip
            touched ^= _touch_rows(hashes, candidates, count)
            matches = _verify(
                hashes, candidates, count, query, number, table, thresholds, table_bits,
                radius, found, matches,
            )  # fmt: skip
            if matches < 0:
                return 0, BAD_POSTINGS, touched
    return matches, OK, touched


@_compiled
def _buckets(
    offsets: Any,
    table: int,
    prefix: Any,
    flips: int,
    masks: Any,
    mask_flips: Any,
    probes: int,
    rows: int,
    starts: Any,
    ends: Any,
    allowed: Any,
) -> Any:
    """1. Bounds of the buckets within ``flips`` of ``prefix``; total postings, -1 if bad.

    Table 0's bounds are rows (it has no postings); table ``j``'s start at
    ``(j - 1) * rows``.
    """
    base = max(table - 1, 0) * rows
    total = np.int64(0)
    for probe in range(probes):
        bucket = prefix ^ masks[probe]
        start = np.int64(offsets[table, bucket])
        end = np.int64(offsets[table, bucket + 1])
        if not 0 <= start <= end <= rows:
            return -1
        starts[probe] = base + start
        ends[probe] = base + end
        allowed[probe] = flips - mask_flips[probe]
        total += end - start
    return total


@_compiled
def _touch_runs(hashes: Any, starts: Any, ends: Any, probes: int) -> Any:
    """2'. Load the first and last hash of each of table 0's buckets (runs of rows)."""
    touched = np.uint64(0)
    last = hashes.shape[0] - 1
    for probe in range(probes):
        if ends[probe] > starts[probe]:
            touched ^= hashes[starts[probe], 0] ^ hashes[min(ends[probe] - 1, last), 3]
    return touched


@_compiled
def _verify_runs(
    hashes: Any,
    starts: Any,
    ends: Any,
    probes: int,
    query: Any,
    number: int,
    key: Any,
    flips: int,
    table_bits: int,
    radius: int,
    found: Any,
    matches: int,
) -> Any:
    """3'. Record rows of table 0's buckets whose chunk is within ``flips`` of ``key``
    and whose hash is within ``radius``: the first table, so none was found before."""
    q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
    chunk_mask = (_ONE << np.uint64(table_bits)) - _ONE
    for probe in range(probes):
        for row in range(starts[probe], ends[probe]):
            h0 = hashes[row, 0]
            if np.int64(popcount((h0 & chunk_mask) ^ key)) > flips:
                continue
            distance = np.int64(
                popcount(h0 ^ q0)
                + popcount(hashes[row, 1] ^ q1)
                + popcount(hashes[row, 2] ^ q2)
                + popcount(hashes[row, 3] ^ q3)
            )
            if distance <= radius:
                if matches < found.shape[0]:
                    found[matches, 0] = number
                    found[matches, 1] = row
                    found[matches, 2] = distance
                matches += 1
    return matches


@_compiled
def _touch(postings: Any, starts: Any, ends: Any, probes: int, width: int) -> Any:
    """2. Load the first and last posting word of each bucket, so later reads hit cache."""
    touched = np.uint64(0)
    for probe in range(probes):
        touched ^= postings[(starts[probe] * width) >> 6]
        touched ^= postings[(ends[probe] * width) >> 6]
    return touched


@_compiled
def _gather(
    postings: Any,
    starts: Any,
    ends: Any,
    allowed: Any,
    probes: int,
    suffix: Any,
    width: int,
    row_bits: int,
    candidates: Any,
) -> Any:
    """3. Rows of the postings whose chunk suffix is within what its bucket allows."""
    row_mask = (_ONE << np.uint64(row_bits)) - _ONE
    count = 0
    for probe in range(probes):
        left = allowed[probe]
        for entry in range(starts[probe], ends[probe]):
            value = _read_bits(postings, entry * width, width)
            candidates[count] = np.int64(value & row_mask)
            count += np.int64(popcount((value >> np.uint64(row_bits)) ^ suffix)) <= left
    return count


@_compiled
def _touch_rows(hashes: Any, candidates: Any, count: int) -> Any:
    """4a. Load each candidate's hash (clamped in range), so verifying hits cache."""
    touched = np.uint64(0)
    last = hashes.shape[0] - 1
    for at in range(count):
        touched ^= hashes[min(candidates[at], last), 0]
    return touched


@_compiled
def _verify(
    hashes: Any,
    candidates: Any,
    count: int,
    query: Any,
    number: int,
    table: int,
    thresholds: Any,
    table_bits: int,
    radius: int,
    found: Any,
    matches: int,
) -> Any:
    """4b. Record candidates within ``radius`` that no earlier table finds; -1 if bad."""
    q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
    for at in range(count):
        row = candidates[at]
        if row >= hashes.shape[0]:
            return -1
        h0, h1, h2, h3 = hashes[row, 0], hashes[row, 1], hashes[row, 2], hashes[row, 3]
        distance = np.int64(
            popcount(h0 ^ q0) + popcount(h1 ^ q1) + popcount(h2 ^ q2) + popcount(h3 ^ q3)
        )
        if distance > radius:
            continue
        earlier = False
        for other in range(table):
            flips = thresholds[other]
            if flips >= 0:
                first = other * table_bits
                near = chunk(h0, h1, h2, h3, first, table_bits) ^ chunk(
                    q0, q1, q2, q3, first, table_bits
                )
                if np.int64(popcount(near)) <= flips:
                    earlier = True
                    break
        if earlier:
            continue
        if matches < found.shape[0]:
            found[matches, 0] = number
            found[matches, 1] = row
            found[matches, 2] = distance
        matches += 1
    return matches


@_compiled
def scan(queries: Any, hashes: Any, radius: int, found: Any) -> Any:
    """Every ``(query, row, distance)`` within ``radius``, checking every row.

    Matches go into ``found`` as in ``search_tables``; returns their number.
    """
    matches = 0
    for number in range(queries.shape[0]):
        matches = _scan_one(queries[number], hashes, radius, number, found, matches)
    return matches


@_compiled
def _scan_one(query: Any, hashes: Any, radius: int, number: int, found: Any, matches: int) -> Any:
    """``scan`` for one query."""
    q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
    for row in range(hashes.shape[0]):
        distance = np.int64(
            popcount(hashes[row, 0] ^ q0)
            + popcount(hashes[row, 1] ^ q1)
            + popcount(hashes[row, 2] ^ q2)
            + popcount(hashes[row, 3] ^ q3)
        )
        if distance <= radius:
            if matches < found.shape[0]:
                found[matches, 0] = number
                found[matches, 1] = row
                found[matches, 2] = distance
            matches += 1
    return matches
