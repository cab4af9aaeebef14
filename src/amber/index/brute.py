"""Brute-force Hamming range search: the reference the fast index is tested against.

Deliberately simple and independent of ``mih.py`` (it unpacks bits instead of using a
popcount), so that agreement between the two means something.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from amber.errors import UserError

HASH_BYTES = 32
MAX_RADIUS = 63


def brute_force_search(
    hashes: npt.NDArray[np.uint8],
    ids: npt.NDArray[np.int64],
    queries: npt.NDArray[np.uint8],
    radius: int,
) -> list[list[tuple[int, int]]]:
    """For each query, every ``(id, distance)`` with distance <= ``radius``.

    ``hashes`` is ``(n, 32)`` uint8 (256-bit PDQ hashes), ``ids`` is ``(n,)`` and
    ``queries`` is ``(q, 32)`` uint8. Each query's list is sorted by distance, then id.
    Duplicate ids are not merged: this is the plain reference.

    Raises ``UserError`` when shapes or dtypes are wrong or ``radius`` is not in 0..63.
    """
    hashes = _check_hashes(hashes, "hashes")
    queries = _check_hashes(queries, "queries")
    ids = np.asarray(ids)
    if ids.shape != (hashes.shape[0],):
        raise UserError(f"ids has shape {ids.shape}, expected ({hashes.shape[0]},) to match hashes")
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
        raise UserError(f"radius {radius!r} is not an integer; give 0..{MAX_RADIUS}")
    if not 0 <= radius <= MAX_RADIUS:
        raise UserError(f"radius {radius} is out of range; give 0..{MAX_RADIUS}")
    results: list[list[tuple[int, int]]] = []
    for query in queries:
        distances = np.unpackbits(np.bitwise_xor(hashes, query), axis=1).sum(axis=1)
        hits = np.flatnonzero(distances <= radius)
        pairs = [(int(ids[i]), int(distances[i])) for i in hits]
        pairs.sort(key=lambda pair: (pair[1], pair[0]))
        results.append(pairs)
    return results


def _check_hashes(array: npt.NDArray[np.uint8], name: str) -> npt.NDArray[np.uint8]:
    """``array`` as a ``(n, 32)`` uint8 array. Raises ``UserError`` otherwise."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != HASH_BYTES:
        raise UserError(
            f"{name} has dtype {array.dtype} and shape {array.shape}; "
            f"expected uint8 of shape (n, {HASH_BYTES})"
        )
    return array
