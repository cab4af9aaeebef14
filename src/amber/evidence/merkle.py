"""RFC 9162 §2.1 Merkle trees over SHA-256: roots, inclusion and consistency proofs.

Hashing (RFC 9162 §2.1.1): a leaf is ``SHA-256(0x00 || data)``, an inner node
``SHA-256(0x01 || left || right)``, and the empty tree ``SHA-256("")``. The tree over
``n > 1`` leaves splits at ``k``, the largest power of two below ``n``.

``MerkleTree`` keeps one level per height: level ``h`` holds, back to back, the hashes of
the complete subtrees of ``2**h`` leaves that the log has so far. Appending is amortised
O(1); the root of any prefix, and every proof, is assembled from at most O(log n) stored
hashes per step, so no call rehashes the log. A level is a ``bytearray`` of 32-byte hashes
(about 64 bytes per leaf in all), which keeps a log of millions of leaves cheap.

The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2, with the edge conventions of the
transparency-dev/merkle test vectors (``tests/data/merkle/README.md``): an index outside
the tree, a first size of 0, and hashes that are not 32 bytes all fail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from amber.errors import UserError

HASH_SIZE = 32
"""Bytes in a SHA-256 hash, the only hash these trees use."""

MAX_SIZE = 2**64 - 1
"""Largest tree size or index accepted: sizes are unsigned 64-bit on the wire."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


EMPTY_ROOT = _sha256(b"")
"""The root of the empty tree, ``SHA-256("")`` (RFC 9162 §2.1.1)."""


class MerkleError(UserError):
    """A Merkle tree was asked for something it cannot give (a size or index out of range)."""


class ProofError(MerkleError):
    """An inclusion or consistency proof did not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf entry: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an inner node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right)


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 tree of leaf hashes, with roots and proofs for any prefix."""

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size})"

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf, given as its leaf hash (see ``leaf_hash``).

        Raises ``MerkleError`` if the hash is not 32 bytes or the tree is full.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise MerkleError(
                f"a leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}: "
                "pass leaf_hash(entry), not the entry"
            )
        if self._size == MAX_SIZE:
            raise MerkleError(f"the tree is full ({MAX_SIZE} leaves)")
        self._levels[0] += leaf_hash
        self._size += 1
        # Every complete pair at a level makes one hash at the next level up.
        height, index = 0, self._size - 1
        while index & 1:
            level = self._levels[height]
            parent = node_hash(bytes(level[-2 * HASH_SIZE : -HASH_SIZE]), bytes(level[-HASH_SIZE:]))
            height += 1
            index >>= 1
            if height == len(self._levels):
                self._levels.append(bytearray())
            self._levels[height] += parent

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaves in order, each given as its leaf hash. Raises ``MerkleError``."""
        for value in leaf_hashes:
            self.append(value)

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``. Raises ``MerkleError`` if there is none."""
        if not 0 <= index < self._size:
            raise MerkleError(f"leaf index {index} is outside a tree of {self._size} leaves")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree over the first ``size`` leaves (default: all).

        Raises ``MerkleError`` if ``size`` is negative or beyond the tree.
        """
        size = self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1).

        Hashes run from the leaf's sibling up to the root's child. Raises ``MerkleError``
        if ``index`` is not below ``size`` or ``size`` is beyond the tree.
        """
        size = self._check_size(size)
        if not 0 <= index < size:
            raise MerkleError(f"leaf index {index} is outside a tree of {size} leaves")
        # PATH(m, D[start:end]) unrolled from the root down; the result is read bottom up.
        path: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                path.append(self._range_hash(start + k, end))
                end = start + k
            else:
                path.append(self._range_hash(start, start + k))
                start += k
                m -= k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """The proof that the tree of ``first`` leaves is a prefix of that of ``second``.

        RFC 9162 §2.1.4.1 ``PROOF(first, D[second])``; empty when the sizes are equal.
        Raises ``MerkleError`` unless ``1 <= first <= second <= len(self)``.
        """
        second = self._check_size(second)
        if not 1 <= first <= second:
            raise MerkleError(
                f"a consistency proof needs 1 <= first <= second; got first {first}, "
                f"second {second}"
            )
        # SUBPROOF(m, D[start:end], b) unrolled from the root down; read bottom up.
        proof: list[bytes] = []
        start, end, m, whole = 0, second, first, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._range_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._range_hash(start, start + k))
                start += k
                m -= k
                whole = False
        if not whole:
            proof.append(self._range_hash(start, end))
        proof.reverse()
        return proof

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise MerkleError(
                f"tree size {size} is outside 0..{self._size}, the sizes this tree had"
            )
        return size

    def _node(self, height: int, index: int) -> bytes:
        """The stored hash of complete subtree ``index`` at ``height``."""
        offset = index * HASH_SIZE
        return bytes(self._levels[height][offset : offset + HASH_SIZE])

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)``, where ``start`` is a multiple of a power of two
        no smaller than ``end - start`` (true of every range the RFC recursion visits).

        Such a range is a run of complete subtrees, largest first, and its MTH folds them
        from the right.
        """
        n = end - start
        parts: list[bytes] = []
        for height in range(n.bit_length() - 1, -1, -1):
            if n >> height & 1:
                parts.append(self._node(height, start >> height))
                start += 1 << height
        result = parts.pop()
        while parts:
            result = node_hash(parts.pop(), result)
        return result


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > 2 * 64:
        raise ProofError(f"the proof has {len(proof)} hashes, more than any 64-bit tree needs")
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}")


def _check_uint64(value: int, what: str) -> None:
    if not 0 <= value <= MAX_SIZE:
        raise ProofError(f"{what} {value} is not an unsigned 64-bit integer")


def verify_inclusion(
    *, leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` sits at ``leaf_index`` in the tree of ``tree_size`` with ``root``.

    RFC 9162 §2.1.3.2. Returns ``None`` on success; raises ``ProofError`` naming the
    failed check otherwise.
    """
    _check_uint64(leaf_index, "leaf index")
    _check_uint64(tree_size, "tree size")
    if leaf_index >= tree_size:
        raise ProofError(f"leaf index {leaf_index} is not below tree size {tree_size}")
    _check_hash(leaf_hash, "the leaf hash")
    _check_hash(root, "the root")
    _check_proof(proof)
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(
                f"the proof is longer than the path of leaf {leaf_index} in a tree of {tree_size}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"the proof is shorter than the path of leaf {leaf_index} in a tree of {tree_size}"
        )
    if r != root:
        raise ProofError(
            f"the proof for leaf {leaf_index} leads to root {r.hex()}, not the expected "
            f"{root.hex()} of tree size {tree_size}"
        )


def verify_consistency(
    *, first: int, second: int, first_hash: bytes, second_hash: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``first`` leaves with ``first_hash`` is a prefix of the tree of
    ``second`` leaves with ``second_hash``.

    RFC 9162 §2.1.4.2, with the conventions of the transparency-dev vectors: ``first == 0``
    always fails; equal sizes need an empty proof and byte-equal roots. Returns ``None``
    on success; raises ``ProofError`` naming the failed check otherwise.
    """
    _check_uint64(first, "first tree size")
    _check_uint64(second, "second tree size")
    if second < first:
        raise ProofError(f"second tree size {second} is smaller than first tree size {first}")
    if first == 0:
        raise ProofError("no consistency proof exists from the empty tree (first size 0)")
    if first == second:
        # As upstream: a plain byte comparison, before any length check.
        if proof:
            raise ProofError(f"the sizes are equal ({first}) but the proof is not empty")
        if first_hash != second_hash:
            raise ProofError(f"the sizes are equal ({first}) but the roots differ")
        return
    if not proof:
        raise ProofError(f"the proof from size {first} to size {second} is empty")
    _check_hash(first_hash, "the first root")
    _check_hash(second_hash, "the second root")
    _check_proof(proof)
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root is a node of the path
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the proof from size {first} to size {second} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the proof from size {first} to size {second} is too short")
    if fr != first_hash:
        raise ProofError(
            f"the proof rebuilds first root {fr.hex()}, not the expected {first_hash.hex()} "
            f"of size {first}"
        )
    if sr != second_hash:
        raise ProofError(
            f"the proof rebuilds second root {sr.hex()}, not the expected {second_hash.hex()} "
            f"of size {second}"
        )
