"""The index interface every signal type's bank values are found through, and two generic ones.

A signal type gives its index with ``SignalType.index`` (python-threatexchange's
``get_index_cls``). Rows are ``entry_signals`` row ids; values are the type's canonical text.

- ``DatabaseIndex``: exact types (sha256, md5) are looked up in the database, whose
  ``(signal_type, value)`` index already is the fast path; nothing to keep in step.
- ``BruteForceIndex``: every value compared with the type's own ``distance``. It is the
  index of a near-match type that brings none of its own, and the reference that every
  fast index (PDQ's multi-index hashing) is tested against.

An index that keeps its own copy of the rows (``mirrors_database``) is kept in step by
``amber.matching.Matcher``: it adds the rows above ``max_id`` and drops deleted ones.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa

from amber.errors import UserError
from amber.store.tables import entry_signals

if TYPE_CHECKING:
    from amber.signals.base import SignalType

#: One bank value found for one query: (``entry_signals`` row id, distance).
Hit = tuple[int, int]


class SignalIndex(ABC):
    """Bank values of one signal type, found by distance from query values.

    ``search`` and ``nearest`` give, for each query value in order, its hits sorted by
    distance, then row id. An index that cannot read its stored state raises
    ``amber.index.layout.IndexCorruptError``; the matcher then ``clear``s it and refills
    it from the database.
    """

    #: True when the index holds its own copy of the rows, which the matcher keeps in
    #: step with the database; False when it reads the database at search time.
    mirrors_database: ClassVar[bool] = True
    #: ``search`` gives at most this many rows a value, the nearest (``None``: every
    #: row within the radius).
    max_hits: ClassVar[int | None] = None

    @property
    def directory(self) -> Path | None:
        """The folder the index keeps on disk; ``None`` when it lives in memory."""
        return None

    @property
    @abstractmethod
    def max_id(self) -> int:
        """The largest row id ever added (even if removed since); -1 when none."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of values the index holds itself (0 for one that reads the database)."""

    @abstractmethod
    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        """Add rows; a row id already held takes its new value."""

    def add_all(self, batches: Iterable[tuple[Sequence[int], Sequence[str]]]) -> int:
        """Add batches of rows as one change; returns how many rows there were. An index
        that rebuilds itself on a large add (PDQ's) builds once, not once a batch; by
        default each batch is added in turn."""
        count = 0
        for ids, values in batches:
            self.add(ids, values)
            count += len(ids)
        return count

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> None:
        """Drop rows (ids not held are ignored)."""

    @abstractmethod
    def clear(self) -> None:
        """Empty the index (the matcher refills it from the database)."""

    @abstractmethod
    def search(self, values: Sequence[str], radius: int) -> list[list[Hit]]:
        """For each value, every row within ``radius`` (inclusive).

        Raises ``UserError`` for a radius the index cannot search.
        """

    @abstractmethod
    def nearest(self, values: Sequence[str], k: int) -> list[list[Hit]]:
        """For each value, the ``k`` closest rows the index can tell apart, however far."""

    def refresh(self) -> None:
        """Take up what other processes wrote to a shared index; nothing by default."""
        return None

    def warm_up(self) -> None:
        """Load whatever the first search would load (compiled code); nothing by default."""
        return None


class DatabaseIndex(SignalIndex):
    """An exact type's values, looked up in ``entry_signals`` at search time.

    Only identical values match, so any radius finds the equal values (distance 0), and
    ``nearest`` gives those too: every other value is as far as any other.
    """

    mirrors_database = False

    def __init__(self, db: sa.Engine, signal_type: str) -> None:
        self.db = db
        self.signal_type = signal_type

    @property
    def max_id(self) -> int:
        return -1

    def __len__(self) -> int:
        return 0

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        """Nothing to do: the database is the index."""

    def remove(self, ids: Sequence[int]) -> None:
        """Nothing to do: the database is the index."""

    def clear(self) -> None:
        """Nothing to do: the database is the index."""

    def search(self, values: Sequence[str], radius: int) -> list[list[Hit]]:
        _check_radius(radius)
        wanted = sorted(set(values))
        found: dict[str, list[int]] = {}
        if wanted:
            query = (
                sa.select(entry_signals.c.id, entry_signals.c.value)
                .where(
                    entry_signals.c.signal_type == self.signal_type,
                    entry_signals.c.value.in_(wanted),
                )
                .order_by(entry_signals.c.id)
            )
            with self.db.connect() as conn:
                for row in conn.execute(query):
                    found.setdefault(str(row.value), []).append(int(row.id))
        return [[(row_id, 0) for row_id in found.get(v, [])] for v in values]

    def nearest(self, values: Sequence[str], k: int) -> list[list[Hit]]:
        return [hits[:k] for hits in self.search(values, 0)]


class BruteForceIndex(SignalIndex):
    """Every value held in memory and compared with ``signal_type.distance``.

    Deliberately plain (no pruning, no shared state), so that a fast index agreeing with
    it means something. Refilled from the database in each process.
    """

    def __init__(self, signal_type: SignalType) -> None:
        self.signal_type = signal_type
        self._values: dict[int, str] = {}
        self._max_id = -1

    @property
    def max_id(self) -> int:
        return self._max_id

    def __len__(self) -> int:
        return len(self._values)

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        if len(ids) != len(values):
            raise UserError(f"{len(ids)} ids for {len(values)} values; give one id per value")
        for row_id, value in zip(ids, values, strict=True):
            self._values[int(row_id)] = value
            self._max_id = max(self._max_id, int(row_id))

    def remove(self, ids: Sequence[int]) -> None:
        for row_id in ids:
            self._values.pop(int(row_id), None)

    def clear(self) -> None:
        self._values.clear()
        self._max_id = -1

    def search(self, values: Sequence[str], radius: int) -> list[list[Hit]]:
        _check_radius(radius)
        out = []
        for value in values:
            hits = [(i, d) for i, d in self._distances(value) if d <= radius]
            out.append(sorted(hits, key=lambda hit: (hit[1], hit[0])))
        return out

    def nearest(self, values: Sequence[str], k: int) -> list[list[Hit]]:
        return [
            heapq.nsmallest(k, self._distances(v), key=lambda hit: (hit[1], hit[0])) for v in values
        ]

    def _distances(self, value: str) -> list[Hit]:
        distance = self.signal_type.distance
        return [(row_id, distance(value, held)) for row_id, held in self._values.items()]


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise UserError(f"radius {radius!r} is not a whole number >= 0")
    return radius
