"""Writing many bank entries at once: batches of rows, not a statement per row.

``EntryWriter`` inserts entries and their signal values in the caller's transaction, in
batches: on SQLite one ``executemany`` per table and batch (the page cache enlarged for
the transaction by ``bulk_session``), on PostgreSQL ``COPY`` through psycopg. Entry ids
and value row ids are taken before the rows are written, under the bank writer lock
(SQLite: after the largest; PostgreSQL: a block of each table's sequence), so a value row
names its entry without a round trip per entry, and the writer knows each value row's id:
``written`` hands them to the signal indexes after the commit, with no reading back
(``amber.matching.Matcher.take``). No one else writes the tables meanwhile (bank writes hold
the lock), so the ids are the next ones, in the order written, as every other bank write's
are (``amber.matching`` indexes rows above the last it saw).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from amber.signals.base import SignalValue
from amber.store.tables import bank_entries, entry_signals

#: Entries held before a batch is written.
BATCH = 50_000
#: A batch of at least this many entries is written in the order of their first value
#: (type, then hash): inserting into the ``(signal_type, value)`` index in key order
#: touches each of its pages once, not once a row (a third of PostgreSQL's time at 1M).
SORT_FROM = 10_000
#: SQLite's page cache during a bulk write, at most, in KiB (the default is 2 MiB): the
#: value index takes inserts all over it, and a page evicted mid-import is read and
#: written again (10 million rows make an index of about 1 GB). Pages are taken as used.
SQLITE_CACHE_KIB = 2 * 1024 * 1024

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
_VALUE_COLUMNS = (
    "id",
    "entry_id",
    "signal_type",
    "signal_version",
    "value",
    "variant",
    "quality",
)

#: Value rows written, by signal type: batches of (row ids, values), as
#: ``amber.index.SignalIndex.add_all`` takes them.
Written = dict[str, list[tuple[Sequence[int], list[str]]]]


#: An import of at least this many entries refreshes PostgreSQL's table statistics.
ANALYZE_FROM = 10_000


def refresh_statistics(db: sa.Engine) -> None:
    """Have PostgreSQL look at the bank tables again after a bulk write (``ANALYZE``, a
    sample of rows: about a second at 10 million). Until its statistics are refreshed
    (autovacuum may be off, and is late when on), the planner takes a bank just filled
    from empty for a small table and scans all of it for each chunk of a later
    ``--sync``'s deletes (a 1 % re-sync of 10 million rows took 12 minutes). SQLite's
    planner uses the indexes without statistics: nothing to do there."""
    if db.dialect.name != "postgresql":
        return
    with db.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {bank_entries.name}, {entry_signals.name}")


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

    A full batch is written by a thread of its own while the caller reads on (the
    database lets go of the interpreter while it works); one batch at a time, in order.
    Until ``flush`` or ``wait`` returns, the caller leaves ``conn`` alone. ``versions``
    gives each signal type's version, stored with its values; ``added_at`` is every
    entry's time. ``written`` holds every value row written, by type, with its id.
    ``extra`` columns are ``note``, ``content_id``, ``content_uri`` and
    ``metadata`` (a JSON object).
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
        self.written: Written = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amber-bank-write")
        self._writing: Future[None] | None = None
        self._entries: list[tuple[str, str | None, Mapping[str, Any] | None]] = []
        self._values: list[Sequence[SignalValue]] = []
        #: Plain entries (``add_plain``) in the order added, in runs of one type: the
        #: type, and each entry's source, row number and value. Queued only while no
        #: other entry is: the batch keeps the order entries came in.
        self._plain: list[tuple[str, list[str], list[int], list[str]]] = []
        self._queued = 0
        self._json: Callable[[Any], Any]
        if self.postgres:
            self._added_at: Any = added_at.isoformat()  # COPY's text, made once
            self._json = json.dumps
        else:
            self._added_at = _bind(bank_entries.c.added_at, conn, added_at)
            self._json = functools.partial(_bind, bank_entries.c.metadata, conn)
            self._next_id = int(
                conn.execute(sa.select(sa.func.max(bank_entries.c.id))).scalar() or 0
            )
            # AUTOINCREMENT: never an id of a deleted row (sqlite_sequence keeps the largest
            # ever given); an explicit id above it moves it on, as a generated one does.
            self._next_value_id = int(
                conn.exec_driver_sql(
                    "SELECT max(coalesce((SELECT max(id) FROM entry_signals), 0), "
                    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'entry_signals'), 0))"
                ).scalar()
                or 0
            )

    def add(
        self,
        source: str,
        label: str | None,
        values: Sequence[SignalValue],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one entry; written with its batch, or by ``flush``."""
        if self._plain:
            self._unplain()
        self._entries.append((source, label, extra))
        self._values.append(values)
        self._queued += 1
        if self._queued >= self.batch:
            self._start()

    def add_plain(
        self, source: str, signal_type: str, numbers: Sequence[int], values: Sequence[str]
    ) -> None:
        """Queue entries of one value each, of ``signal_type``, and nothing else (a hash
        list's ``amber.bank_formats.Plain`` rows): ``values[i]`` read at row
        ``numbers[i]`` of ``source``. Written with their batch, or by ``flush``, without
        an object a row."""
        if self._entries:  # after other entries: queued as they are, in order
            for number, value in zip(numbers, values, strict=True):
                self._entries.append((f"{source}:{number}", None, None))
                self._values.append((SignalValue(signal_type, value),))
        else:
            if not self._plain or self._plain[-1][0] != signal_type:
                self._plain.append((signal_type, [], [], []))
            _, sources, queued_numbers, queued_values = self._plain[-1]
            sources.extend([source] * len(values))
            queued_numbers.extend(numbers)
            queued_values.extend(values)
        self._queued += len(values)
        if self._queued >= self.batch:
            self._start()

    def _unplain(self) -> None:
        """Queue the plain entries queued so far as other entries are (before one)."""
        plain, self._plain = self._plain, []
        for signal_type, sources, numbers, values in plain:
            for source, number, value in zip(sources, numbers, values, strict=True):
                self._entries.append((f"{source}:{number}", None, None))
                self._values.append((SignalValue(signal_type, value),))

    def flush(self) -> None:
        """Write the queued entries and their values; returns when all are written.
        Raises what writing raised."""
        self._start()
        self.wait()

    def wait(self) -> None:
        """Wait for the batch being written (if any). Raises what writing raised."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def close(self) -> None:
        """Wait for the batch being written, whatever came of it, and end the thread."""
        with contextlib.suppress(Exception):
            self.wait()
        self._pool.shutdown()

    def _start(self) -> None:
        """Turn the queued entries into rows, here, and hand them to the writing thread
        (once the batch before is written: ids are taken in order)."""
        self.wait()
        if not self._queued:
            return
        queued, queued_values, plain = self._entries, self._values, self._plain
        self._entries, self._values, self._plain, self._queued = [], [], [], 0
        tables = self._entry_tables(queued, queued_values)
        for signal_type, sources, numbers, values in plain:
            tables += self._plain_tables(signal_type, sources, numbers, values)
        if self.postgres:
            self._writing = self._pool.submit(self._copy, tables)
        else:
            self._writing = self._pool.submit(self._insert, tables)

    def _entry_tables(
        self,
        queued: list[tuple[str, str | None, Mapping[str, Any] | None]],
        queued_values: list[Sequence[SignalValue]],
    ) -> list[tuple[str, Sequence[str], Any]]:
        """The rows of queued entries and their values, per table, ids taken: a list of
        tuples each on SQLite, COPY's text on PostgreSQL."""
        if not queued:
            return []
        if len(queued) >= SORT_FROM:  # the value index then takes the batch in order
            order = sorted(range(len(queued)), key=lambda i: _first(queued_values[i]))
            queued = [queued[i] for i in order]
            queued_values = [queued_values[i] for i in order]
        ids = self._take_ids(bank_entries.name, len(queued))
        entries = []
        for entry_id, (source, label, extra) in zip(ids, queued, strict=True):
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
        pairs = [(e, v) for e, group in zip(ids, queued_values, strict=True) for v in group]
        value_ids = self._take_ids(entry_signals.name, len(pairs))
        values = [
            (i, e, v.signal_type, versions[v.signal_type], v.value, v.variant, v.quality)
            for i, (e, v) in zip(value_ids, pairs, strict=True)
        ]
        self._remember(value_ids, values)
        # Columns NULL in every row of the batch are left out: each bound cell costs.
        entry_columns, entries = _present(_ENTRY_COLUMNS, entries, required=4)
        value_columns, values = _present(_VALUE_COLUMNS, values, required=6)
        self.added += len(entries)
        if self.postgres:  # COPY's text made here; the thread only sends it
            return [
                (bank_entries.name, entry_columns, _copy_text(entries)),
                (entry_signals.name, value_columns, _copy_text(values)),
            ]
        return [
            (bank_entries.name, entry_columns, entries),
            (entry_signals.name, value_columns, values),
        ]

    def _plain_tables(
        self, signal_type: str, sources: list[str], numbers: list[int], values: list[str]
    ) -> list[tuple[str, Sequence[str], Any]]:
        """``_entry_tables`` for plain entries: one value each, of ``signal_type``, in the
        ``original`` view, no quality, label or other column."""
        count = len(values)
        if not count:  # every one a duplicate
            return []
        if count >= SORT_FROM:  # in value order, as ``_entry_tables`` writes
            order = sorted(range(count), key=values.__getitem__)
            sources = [sources[i] for i in order]
            numbers = [numbers[i] for i in order]
            values = [values[i] for i in order]
        ids = self._take_ids(bank_entries.name, count)
        value_ids = self._take_ids(entry_signals.name, count)
        self.written.setdefault(signal_type, []).append((value_ids, values))
        self.added += count
        version = self.versions[signal_type]
        entry_columns = _ENTRY_COLUMNS[:4]
        value_columns = _VALUE_COLUMNS[:6]
        if self.postgres:
            bank, added_at, kind = self.bank_id, self._added_at, _copy_cell(signal_type)
            escaped = {source: _copy_cell(source) for source in set(sources)}
            entries = "".join(
                [
                    f"{i}\t{bank}\t{escaped[source]}:{n}\t{added_at}\n"
                    for i, source, n in zip(ids, sources, numbers, strict=True)
                ]
            )
            if any(map(_NEEDS_ESCAPE.search, values)):
                values = [_copy_cell(v) for v in values]
            rows = "".join(
                [
                    f"{v}\t{e}\t{kind}\t{version}\t{value}\toriginal\n"
                    for v, e, value in zip(value_ids, ids, values, strict=True)
                ]
            )
            return [
                (bank_entries.name, entry_columns, entries.encode("utf-8")),
                (entry_signals.name, value_columns, rows.encode("utf-8")),
            ]
        return [
            (
                bank_entries.name,
                entry_columns,
                list(
                    zip(
                        ids,
                        itertools.repeat(self.bank_id),
                        [f"{source}:{n}" for source, n in zip(sources, numbers, strict=True)],
                        itertools.repeat(self._added_at),
                    )
                ),
            ),
            (
                entry_signals.name,
                value_columns,
                list(
                    zip(
                        value_ids,
                        ids,
                        itertools.repeat(signal_type),
                        itertools.repeat(version),
                        values,
                        itertools.repeat("original"),
                    )
                ),
            ),
        ]

    def _take_ids(self, table: str, count: int) -> range:
        """The next ``count`` ids of ``table`` (``bank_entries`` or ``entry_signals``)."""
        if not count:
            return range(0)
        if self.postgres:
            # One call moves the sequence past the whole batch (nextval once a row costs
            # 7 s a million); no one else takes from it meanwhile: bank writes hold the lock.
            last = self.conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"nextval(pg_get_serial_sequence('{table}', 'id')) + %(more)s)",
                {"more": count - 1},
            ).scalar_one()
            return range(int(last) - count + 1, int(last) + 1)
        if table == bank_entries.name:
            first = self._next_id + 1
            self._next_id += count
        else:
            first = self._next_value_id + 1
            self._next_value_id += count
        return range(first, first + count)

    def _remember(self, ids: range, values: list[tuple[Any, ...]]) -> None:
        """Keep the batch's value rows by type for ``written`` (a list of one type, the
        usual hash list, keeps its ids as the range they are)."""
        types = {row[2] for row in values}
        if len(types) == 1:
            self.written.setdefault(types.pop(), []).append((ids, [row[4] for row in values]))
            return
        for signal_type in types:
            rows = [row for row in values if row[2] == signal_type]
            self.written.setdefault(signal_type, []).append(
                ([row[0] for row in rows], [row[4] for row in rows])
            )

    def _insert(self, tables: list[tuple[str, Sequence[str], list[tuple[Any, ...]]]]) -> None:
        for table, columns, rows in tables:
            marks = ", ".join("?" for _ in columns)
            self.conn.exec_driver_sql(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                rows,  # a list of tuples: executemany
            )

    def _copy(self, tables: list[tuple[str, Sequence[str], bytes]]) -> None:
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            for table, columns, data in tables:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write(data)


def _first(values: Sequence[SignalValue]) -> tuple[str, str]:
    return (values[0].signal_type, values[0].value) if values else ("", "")


def _copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """Rows in COPY's text format (tab-separated, ``\\N`` for NULL, escaped)."""
    return "".join("\t".join(map(_copy_cell, row)) + "\n" for row in rows).encode("utf-8")


#: What COPY's text format escapes in a cell.
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    return str(value)


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
