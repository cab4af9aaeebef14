"""Writing many bank entries at once: batches of rows, not a statement per row.

``EntryWriter`` inserts entries and their signal values in the caller's transaction, in
batches: on SQLite one ``executemany`` per table and batch (the page cache enlarged for
the transaction by ``bulk_session``), on PostgreSQL ``COPY`` through psycopg. Entry ids
are taken before the rows are written (SQLite: after the largest, under the bank writer
lock; PostgreSQL: from the table's sequence), so a value row names its entry without a
round trip per entry. Value rows take their ids from the database, in the order written,
as every other bank write's do (``amber.matching`` indexes rows above the last it saw).
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from amber.signals.base import SignalValue
from amber.store.tables import bank_entries, entry_signals

#: Entries held before a batch is written.
BATCH = 20_000
#: SQLite's page cache during a bulk write, in KiB (the default is 2 MiB): the value
#: index takes random inserts, and each page evicted mid-import is read again.
SQLITE_CACHE_KIB = 512 * 1024

#: Each table's columns as a batch has them: those that are never NULL first.
_ENTRY_COLUMNS = (
    "id",
    "bank_id",
    "source",
    "added_at",
    "label",
    "note",
    "content_id",
    "content_uri",
    "metadata",
)
_VALUE_COLUMNS = ("entry_id", "signal_type", "signal_version", "value", "variant", "quality")


@contextlib.contextmanager
def bulk_session(conn: sa.Connection) -> Iterator[None]:
    """Settings for a bulk write on ``conn`` while the block runs: a SQLite page cache
    of ``SQLITE_CACHE_KIB`` (restored after). Nothing to change on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


class EntryWriter:
    """Adds a bank's entries in batches inside the caller's transaction (which holds the
    bank writer lock: ``amber.banks._serialize_bank_writes``).

    ``versions`` gives each signal type's version, stored with its values; ``added_at``
    is every entry's time. ``extra`` columns are ``note``, ``content_id``,
    ``content_uri`` and ``metadata`` (a JSON object).
    """

    def __init__(
        self,
        conn: sa.Connection,
        bank_id: int,
        *,
        added_at: datetime,
        versions: Mapping[str, int],
        batch: int = BATCH,
    ) -> None:
        self.conn = conn
        self.bank_id = bank_id
        self.versions = versions
        self.batch = batch
        self.postgres = conn.dialect.name == "postgresql"
        self.added = 0
        self._entries: list[tuple[str, str | None, Mapping[str, Any] | None]] = []
        self._values: list[Sequence[SignalValue]] = []
        self._json: Callable[[Any], Any]
        if self.postgres:
            self._added_at: Any = added_at
            self._json = json.dumps
        else:
            self._added_at = _bind(bank_entries.c.added_at, conn, added_at)
            self._json = functools.partial(_bind, bank_entries.c.metadata, conn)
            self._next_id = int(
                conn.execute(sa.select(sa.func.max(bank_entries.c.id))).scalar() or 0
            )

    def add(
        self,
        source: str,
        label: str | None,
        values: Sequence[SignalValue],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one entry; written with its batch, or by ``flush``."""
        self._entries.append((source, label, extra))
        self._values.append(values)
        if len(self._entries) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write the queued entries and their values."""
        if not self._entries:
            return
        ids = self._take_ids(len(self._entries))
        entries = []
        for entry_id, (source, label, extra) in zip(ids, self._entries, strict=True):
            more = extra or {}
            metadata = more.get("metadata")
            entries.append(
                (
                    entry_id,
                    self.bank_id,
                    source,
                    self._added_at,
                    label,
                    more.get("note"),
                    more.get("content_id"),
                    more.get("content_uri"),
                    None if metadata is None else self._json(metadata),
                )
            )
        versions = self.versions
        values = [
            (entry_id, v.signal_type, versions[v.signal_type], v.value, v.variant, v.quality)
            for entry_id, group in zip(ids, self._values, strict=True)
            for v in group
        ]
        # Columns NULL in every row of the batch are left out: each bound cell costs.
        entry_columns, entries = _present(_ENTRY_COLUMNS, entries, required=4)
        value_columns, values = _present(_VALUE_COLUMNS, values, required=5)
        if self.postgres:
            self._copy(bank_entries.name, entry_columns, entries)
            self._copy(entry_signals.name, value_columns, values)
        else:
            self._insert(bank_entries.name, entry_columns, entries)
            self._insert(entry_signals.name, value_columns, values)
        self.added += len(entries)
        self._entries.clear()
        self._values.clear()

    def _take_ids(self, count: int) -> list[int]:
        if self.postgres:
            taken = self.conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('bank_entries', 'id')) "
                "FROM generate_series(1, %(count)s)",
                {"count": count},
            )
            return [int(i) for i in taken.scalars().all()]
        first = self._next_id + 1
        self._next_id += count
        return list(range(first, first + count))

    def _insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            rows,  # a list of tuples: executemany
        )

    def _copy(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        from psycopg.copy import QueuedLibpqWriter

        raw = self.conn.connection.driver_connection
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        # A thread sends what is written while this one formats the next rows.
        with (
            raw.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            for row in rows:
                copy.write_row(row)


def _present(
    columns: Sequence[str], rows: list[tuple[Any, ...]], *, required: int
) -> tuple[Sequence[str], list[tuple[Any, ...]]]:
    """``columns`` and ``rows`` without the columns past the first ``required`` that are
    ``None`` in every row."""
    keep = list(range(required)) + [
        i for i in range(required, len(columns)) if any(row[i] is not None for row in rows)
    ]
    if len(keep) == len(columns):
        return columns, rows
    pick = operator.itemgetter(*keep)
    return [columns[i] for i in keep], [pick(row) for row in rows]


def _bind(column: sa.Column[Any], conn: sa.Connection, value: Any) -> Any:
    """``value`` as the driver takes it for ``column`` (its type's own conversion)."""
    processor = column.type.bind_processor(conn.dialect)
    value = value if processor is None else processor(value)
    if isinstance(value, datetime):  # as sqlite3's own adapter writes it, once, not per row
        value = value.isoformat(" ")
    return value
