"""The signal-type contract, run over every registered type (python-threatexchange's
SignalTypeAutoTest), and proof that the contract check catches a broken type."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import SignalValueError
from amber.index.signal import BruteForceIndex, DatabaseIndex, Hit, SignalIndex
from amber.signals import Content, Role, SignalType, SignalValue, load_signal_types
from amber.signals.base import Reads
from amber.signals.contract import SignalContractError, check_signal_type
from amber.signals.pdq import PdqSignal, PdqSignalIndex

TYPES = load_signal_types()


@pytest.mark.parametrize("name", TYPES.names())
def test_every_registered_signal_type_keeps_the_contract(name: str, tmp_path: Path) -> None:
    check_signal_type(TYPES.get(name), workdir=tmp_path)


def test_built_in_types_bring_the_expected_indexes(tmp_path: Path) -> None:
    from amber.store.db import connect

    db = connect(tmp_path / "a.db")
    try:
        kinds = {
            t.name: type(t.index(db=db, folder=tmp_path / t.name))
            for t in TYPES
            if t.reads is Reads.media
        }
    finally:
        db.dispose()
    assert kinds["sha256"] is DatabaseIndex and kinds["md5"] is DatabaseIndex
    assert kinds["pdq"] is PdqSignalIndex


def test_the_pdq_index_finds_what_brute_force_finds_on_many_hashes(tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    stored = [f"{rng.getrandbits(256):064x}" for _ in range(300)]
    # Near copies: each flips a few bits of a stored hash, at distances up to 40.
    queries = []
    for i in range(60):
        bits = int(stored[i], 16)
        for b in rng.sample(range(256), i % 41):
            bits ^= 1 << b
        queries.append(f"{bits:064x}")
    fast, reference = PdqSignalIndex(tmp_path / "pdq"), BruteForceIndex(PdqSignal())
    for index in (fast, reference):
        index.add(list(range(300)), stored)
        index.remove([3, 5])
    for radius in (0, 10, 31, 40):
        assert fast.search(queries, radius) == reference.search(queries, radius)
    found = fast.search(queries, 31)
    assert sum(map(len, found)) > 20  # the comparison is not between empty answers


class _Sloppy(SignalType):
    """Breaks the contract four ways: accepts anything, asymmetric distance, misnamed
    values, and a value that is not its own canonical form."""

    name = "sloppy"
    version = 1
    exact = False
    default_threshold = 2

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        return [SignalValue("other", "AB")] if content.image is not None else []

    def validate(self, text: str) -> str:
        return text.strip().lower()

    def distance(self, a: str, b: str) -> int:
        return max(0, len(a) - len(b))

    def examples(self) -> list[str]:
        return ["ab", "abcd"]


def test_the_contract_check_names_each_broken_promise(tmp_path: Path) -> None:
    with pytest.raises(SignalContractError) as caught:
        check_signal_type(_Sloppy(), workdir=tmp_path)
    problems = "\n".join(caught.value.problems)
    assert "validate('') accepted an invalid value" in problems
    assert "is not symmetric" in problems
    assert "named 'other', not 'sloppy'" in problems


class _Lossy(BruteForceIndex):
    """A 'fast' index that drops the farthest hit: what the agreement check is for."""

    def search(self, values: list[str], radius: int) -> list[list[Hit]]:  # type: ignore[override]
        return [hits[:-1] for hits in super().search(values, radius)]


class _Hex2(SignalType):
    """Two hex digits; distance is the numeric difference; its index is lossy."""

    name = "hex2"
    version = 1
    exact = False
    default_threshold = 16

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        if content.image is None:
            return []
        return [SignalValue(self.name, f"{content.image.getpixel((0, 0))[0]:02x}")]  # type: ignore[index]

    def validate(self, text: str) -> str:
        value = text.strip().lower()
        if len(value) != 2 or any(c not in "0123456789abcdef" for c in value):
            raise SignalValueError("expected 2 hex digits", signal_type=self.name, value=text)
        return value

    def distance(self, a: str, b: str) -> int:
        return abs(int(a, 16) - int(b, 16))

    def examples(self) -> list[str]:
        return ["00", "08", "10", "ff"]

    def index(self, *, db: object, folder: Path) -> SignalIndex:  # type: ignore[override]
        return _Lossy(self)


def test_the_contract_check_catches_an_index_that_disagrees_with_brute_force(
    tmp_path: Path,
) -> None:
    with pytest.raises(SignalContractError, match="brute force"):
        check_signal_type(_Hex2(), workdir=tmp_path)
