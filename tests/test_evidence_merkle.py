"""RFC 9162 Merkle trees: transparency-dev/merkle vectors, the reference tree, properties."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber.evidence.merkle import (
    EMPTY_ROOT,
    MerkleError,
    MerkleTree,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

DATA = Path(__file__).parent / "data" / "merkle"
INCLUSION = sorted((DATA / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((DATA / "consistency").rglob("*.json"))
REFERENCE = json.loads((DATA / "reference_tree.json").read_text(encoding="utf-8"))
REFERENCE_LEAVES = [bytes.fromhex(h) for h in REFERENCE["leaf_inputs_hex"]]


def _vector(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in vector["proof"] or []]


def _id(path: Path) -> str:
    return str(path.relative_to(DATA))


def _reference_tree() -> MerkleTree:
    return MerkleTree(leaf_hash(entry) for entry in REFERENCE_LEAVES)


# -- transparency-dev/merkle vectors ---------------------------------------------------------


def test_vector_counts() -> None:
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _vector(path)

    def verify() -> None:
        verify_inclusion(
            leaf_index=v["leafIdx"],
            tree_size=v["treeSize"],
            leaf_hash=_b64(v["leafHash"]),
            proof=_proof(v),
            root=_b64(v["root"]),
        )

    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _vector(path)

    def verify() -> None:
        verify_consistency(
            first=v["size1"],
            second=v["size2"],
            first_hash=_b64(v["root1"]),
            second_hash=_b64(v["root2"]),
            proof=_proof(v),
        )

    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


def test_vector_outcome_counts() -> None:
    """The README's table: 6 accepted and 92 rejected vectors of each kind."""
    for paths in (INCLUSION, CONSISTENCY):
        accepted = [p for p in paths if not _vector(p)["wantErr"]]
        assert len(accepted) == 6


@pytest.mark.parametrize("case", ["0", "1", "2", "3", "4"])
def test_generated_inclusion_proofs_match_happy_paths(case: str) -> None:
    v = _vector(DATA / "inclusion" / case / "happy-path.json")
    tree = _reference_tree()
    assert tree.inclusion_proof(v["leafIdx"], v["treeSize"]) == _proof(v)
    assert tree.root(v["treeSize"]) == _b64(v["root"])
    assert tree.leaf(v["leafIdx"]) == _b64(v["leafHash"])


@pytest.mark.parametrize("case", ["0", "1", "2", "3", "4"])
def test_generated_consistency_proofs_match_happy_paths(case: str) -> None:
    v = _vector(DATA / "consistency" / case / "happy-path.json")
    tree = _reference_tree()
    assert tree.consistency_proof(v["size1"], v["size2"]) == _proof(v)
    assert tree.root(v["size1"]) == _b64(v["root1"])
    assert tree.root(v["size2"]) == _b64(v["root2"])


def test_equal_sizes_compare_roots_bytewise_like_upstream() -> None:
    """Documented choice: with equal sizes, upstream compares the roots before any length
    check, so ``sizes-are-equal-one-and-proof-is-empty`` (12-byte roots) is accepted."""
    verify_consistency(first=1, second=1, first_hash=b"x" * 12, second_hash=b"x" * 12, proof=[])
    with pytest.raises(ProofError, match="roots differ"):
        verify_consistency(first=1, second=1, first_hash=b"x", second_hash=b"y", proof=[])


# -- the reference tree ----------------------------------------------------------------------


def test_reference_leaf_and_node_hashes() -> None:
    levels = [[bytes.fromhex(h) for h in level] for level in REFERENCE["node_hashes_hex_by_level"]]
    assert [leaf_hash(entry) for entry in REFERENCE_LEAVES] == levels[0]
    for lower, upper in itertools.pairwise(levels):
        assert [node_hash(lower[2 * i], lower[2 * i + 1]) for i in range(len(upper))] == upper


def test_reference_roots_for_every_size() -> None:
    roots = [bytes.fromhex(h) for h in REFERENCE["root_hashes_hex_by_tree_size"]]
    assert EMPTY_ROOT == bytes.fromhex(REFERENCE["empty_root_hex"]) == hashlib.sha256().digest()
    tree = _reference_tree()
    assert [tree.root(size) for size in range(9)] == roots
    for size in range(9):
        assert MerkleTree(leaf_hash(e) for e in REFERENCE_LEAVES[:size]).root() == roots[size]


# -- the tree API ----------------------------------------------------------------------------


def test_tree_rejects_out_of_range_requests() -> None:
    tree = _reference_tree()
    with pytest.raises(MerkleError):
        tree.root(9)
    with pytest.raises(MerkleError):
        tree.root(-1)
    with pytest.raises(MerkleError):
        tree.inclusion_proof(8)
    with pytest.raises(MerkleError):
        tree.inclusion_proof(3, 3)
    with pytest.raises(MerkleError):
        tree.consistency_proof(0, 4)
    with pytest.raises(MerkleError):
        tree.consistency_proof(5, 4)
    with pytest.raises(MerkleError):
        tree.consistency_proof(2, 9)
    with pytest.raises(MerkleError, match="32 bytes"):
        tree.append(b"an entry, not its hash")
    assert len(tree) == 8
    assert tree.consistency_proof(4, 4) == []
    assert MerkleTree().root() == EMPTY_ROOT


def test_proof_error_is_an_amber_user_error() -> None:
    from amber.errors import AmberError, UserError

    assert issubclass(ProofError, MerkleError)
    assert issubclass(MerkleError, UserError)
    assert issubclass(ProofError, AmberError)


def test_verifiers_reject_out_of_range_integers() -> None:
    h = leaf_hash(b"")
    for index, size in [(-1, 1), (0, 2**64), (2**64 - 1, 2**64 - 1), (2**70, 2**71)]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf_index=index, tree_size=size, leaf_hash=h, proof=[], root=h)
    for first, second in [(-1, 1), (1, 2**64), (2**64, 2**64), (0, 0)]:
        with pytest.raises(ProofError):
            verify_consistency(first=first, second=second, first_hash=h, second_hash=h, proof=[])


def test_large_tree_proofs() -> None:
    """A tree of 2**17 + 5 leaves: proofs for prefixes verify against that prefix's root."""
    size = 2**17 + 5
    tree = MerkleTree(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    for tree_size in (1, 2, 3, 2**16, 2**16 + 1, 100_003, size):
        root = tree.root(tree_size)
        for index in {0, tree_size // 2, tree_size - 1}:
            proof = tree.inclusion_proof(index, tree_size)
            verify_inclusion(
                leaf_index=index,
                tree_size=tree_size,
                leaf_hash=tree.leaf(index),
                proof=proof,
                root=root,
            )
        for first in {1, tree_size // 3 or 1, tree_size}:
            verify_consistency(
                first=first,
                second=tree_size,
                first_hash=tree.root(first),
                second_hash=root,
                proof=tree.consistency_proof(first, tree_size),
            )


# -- properties against the RFC's recursive definitions --------------------------------------


def _mth(leaves: list[bytes]) -> bytes:
    """MTH, straight from RFC 9162 §2.1.1 (``leaves`` are leaf hashes)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH, straight from RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF, straight from RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


def _leaves(n: int, salt: int) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def _fails(check: Any, **kwargs: Any) -> bool:
    try:
        check(**kwargs)
    except ProofError:
        return True
    return False


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300), salt=st.integers(0, 2**32))
def test_root_matches_recursive_mth(size: int, salt: int) -> None:
    leaves = _leaves(size, salt)
    tree = MerkleTree(leaves)
    assert len(tree) == size
    for prefix in range(size + 1):
        assert tree.root(prefix) == _mth(leaves[:prefix])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), salt=st.integers(0, 2**32), bit=st.integers(0, 255))
def test_inclusion_proofs_verify_and_mutations_fail(size: int, salt: int, bit: int) -> None:
    leaves = _leaves(size, salt)
    tree = MerkleTree(leaves)
    root = tree.root()
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert proof == _path(index, leaves)
        good: dict[str, Any] = {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": leaves[index],
            "proof": proof,
            "root": root,
        }
        verify_inclusion(**good)
        mutations: list[dict[str, Any]] = [
            {"root": _flip(root, bit)},
            {"leaf_hash": _flip(leaves[index], bit)},
            {"proof": [*proof, leaves[index]]},
            {"proof": [leaves[index], *proof]},
            {"leaf_index": index + 1},
            {"leaf_index": index ^ 1},
            # A claimed tree size comes with that size's root.
            {"tree_size": size + 1, "root": _mth([*leaves, leaf_hash(b"next")])},
        ]
        if index > 0:
            mutations.append({"leaf_index": index - 1})
        if size > 1:
            mutations.append({"tree_size": size - 1, "root": tree.root(size - 1)})
        for position in range(len(proof)):
            flipped = list(proof)
            flipped[position] = _flip(flipped[position], bit)
            mutations.append({"proof": flipped})
            mutations.append({"proof": proof[:position] + proof[position + 1 :]})
        for change in mutations:
            assert _fails(verify_inclusion, **(good | change)), (index, change)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), salt=st.integers(0, 2**32), bit=st.integers(0, 255))
def test_consistency_proofs_verify_and_mutations_fail(size: int, salt: int, bit: int) -> None:
    leaves = _leaves(size, salt)
    tree = MerkleTree(leaves)
    second_root = tree.root()
    for first in range(1, size + 1):
        proof = tree.consistency_proof(first)
        assert proof == _subproof(first, leaves, True)
        good: dict[str, Any] = {
            "first": first,
            "second": size,
            "first_hash": tree.root(first),
            "second_hash": second_root,
            "proof": proof,
        }
        verify_consistency(**good)
        mutations: list[dict[str, Any]] = [
            {"first_hash": _flip(tree.root(first), bit)},
            {"second_hash": _flip(second_root, bit)},
            {"proof": [*proof, second_root]},
            {"proof": [second_root, *proof]},
            {"first": 0},
        ]
        if first > 1:
            mutations.append({"first": first - 1, "first_hash": tree.root(first - 1)})
        if first < size:
            mutations.append({"first": first + 1, "first_hash": tree.root(first + 1)})
            mutations.append({"first_hash": second_root, "second_hash": tree.root(first)})
        if size > 1 and first < size:
            mutations.append({"second": size - 1, "second_hash": tree.root(size - 1)})
        mutations.append({"second": size + 1, "second_hash": _mth([*leaves, leaf_hash(b"n")])})
        for position in range(len(proof)):
            flipped = list(proof)
            flipped[position] = _flip(flipped[position], bit)
            mutations.append({"proof": flipped})
            mutations.append({"proof": proof[:position] + proof[position + 1 :]})
        for change in mutations:
            assert _fails(verify_consistency, **(good | change)), (first, change)
