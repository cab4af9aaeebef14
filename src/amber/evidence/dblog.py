"""The custody log in the database: one RFC 9162 tree per vault, appended by any process.

Tables (``amber.store.tables``, migration 0015)::

    custody_logs(origin, size)                    the log's head: records appended so far
    custody_records(origin, seq, body, leaf_hash)  record ``seq`` (its leaf index, 0 first)
    custody_checkpoints(origin, size, root, note)  signed checkpoints (C2SP signed notes)

A record is appended in the writer's transaction (a decision's, for a ``preserved``
record): ``UPDATE custody_logs SET size = size + n ... RETURNING size`` claims the next
leaf indexes and locks the head row until the transaction ends, so appends commit in
sequence order, readers always see a prefix of the log, and a transaction that rolls
back leaves no record and no gap. The statement comes last in the transaction, so the
head is held only for the inserts after it.

Records are signed in batches, not one by one: the process holding the log's
PostgreSQL advisory lock (``pg_try_advisory_lock`` on a key derived from the origin) reads
the new rows, checks that they extend the newest checkpoint and signs one for the new size.
Any process may try; exactly one at a time succeeds. On SQLite the database's write lock
plays that part. ``LogSigner`` is the elected signer of a long-running process.

An investigator verifies offline from files: ``export_files`` writes the log in the vault's
file form (``log/records.jsonl`` and ``log/checkpoints/<size>.txt``), byte for byte the
leaves and notes stored here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amber.atomic_write import write_atomic
from amber.evidence.checkpoint import Checkpoint, CheckpointError, Signer, open_note
from amber.evidence.log import CHECKPOINTS, RECORDS, Entry, LogError, canonical
from amber.evidence.merkle import MerkleTree, leaf_hash
from amber.store.tables import custody_checkpoints, custody_logs, custody_records


class _Skipped(Exception):
    """An append's check declined it: roll its transaction back."""


def lock_key(origin: str) -> int:
    """The advisory lock key of a log: the first 8 bytes of SHA-256 of its origin."""
    digest = hashlib.sha256(b"amber custody log signer\n" + origin.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DatabaseLog:
    """One vault's custody log in the database; the same reading interface as
    ``CustodyLog`` (``entries``, ``tree``, checkpoints), appends without a shared folder."""

    #: The database log is never left half-written (it has no partial line to repair).
    partial_tail = False

    def __init__(self, db: sa.Engine, *, origin: str, verifier_key: str) -> None:
        self.db = db
        self.origin = origin
        self.verifier_key = verifier_key
        self.generation = 1
        self.entries: list[Entry] = []
        self.tree = MerkleTree()
        self._lock = threading.Lock()  # one refresh at a time per process
        with self.db.begin() as conn:
            if (
                conn.execute(
                    sa.select(custody_logs.c.size).where(custody_logs.c.origin == origin)
                ).first()
                is None
            ):
                insert = _insert(conn, custody_logs).values(origin=origin, size=0)
                conn.execute(insert.on_conflict_do_nothing())
        self.refresh()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def refresh(self) -> int:
        """Read the records appended since the last read; returns how many. Raises
        ``LogError`` for a gap or a record whose bytes are not canonical or do not hash
        to its stored leaf hash."""
        with self._lock, self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    custody_records.c.seq, custody_records.c.body, custody_records.c.leaf_hash
                )
                .where(
                    custody_records.c.origin == self.origin,
                    custody_records.c.seq >= len(self.entries),
                )
                .order_by(custody_records.c.seq)
            ).all()
            for row in rows:
                self._take(int(row.seq), str(row.body).encode("utf-8"), bytes(row.leaf_hash))
        return len(rows)

    def _take(self, seq: int, line: bytes, stored_hash: bytes) -> None:
        index = len(self.entries)
        where = f"custody record {seq} of {self.origin}"
        if seq != index:
            raise LogError(f"{where}: expected record {index} next; the log has a gap")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise LogError(f"{where} is not JSON: the log is damaged") from None
        if not isinstance(record, dict) or canonical(record) != line:
            raise LogError(f"{where} is not a canonical record: the log is damaged")
        leaf = leaf_hash(line)
        if leaf != stored_hash:
            raise LogError(f"{where} does not hash to its stored leaf hash: it was changed")
        self.entries.append(Entry(index, line, record))
        self.tree.append(leaf)

    # -- appending -----------------------------------------------------------------------

    def append_in(self, conn: sa.Connection, records: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append ``records`` in the caller's transaction (call it last there: the log's
        head stays locked until the transaction ends); returns their leaf indexes. They
        are appended if and only if the transaction commits."""
        if not records:
            return []
        lines = [canonical(r) for r in records]
        size = conn.execute(
            sa.update(custody_logs)
            .where(custody_logs.c.origin == self.origin)
            .values(size=custody_logs.c.size + len(lines))
            .returning(custody_logs.c.size)
        ).scalar_one()
        first = int(size) - len(lines)
        now = datetime.now(UTC)
        conn.execute(
            custody_records.insert(),
            [
                {
                    "origin": self.origin,
                    "seq": first + i,
                    "body": line.decode("utf-8"),
                    "leaf_hash": leaf_hash(line),
                    "appended_at": now,
                }
                for i, line in enumerate(lines)
            ],
        )
        return list(range(first, first + len(lines)))

    def append(
        self,
        record: Mapping[str, Any],
        signer: Signer | None = None,
        *,
        check: Callable[[], bool] | None = None,
    ) -> Entry | None:
        """Append one record in a transaction of its own. ``check`` runs once this
        process holds the log's head (no other append can commit meanwhile) and sees every
        record before: ``False`` appends nothing (returns ``None``), an exception refuses
        it. Records are signed later, in batches (``sign``); ``signer`` is not used."""
        del signer
        try:
            with self.db.begin() as conn:
                if check is not None:
                    self._hold_head(conn)
                    if not check():
                        raise _Skipped
                (index,) = self.append_in(conn, [record])
        except _Skipped:
            return None
        self.refresh()
        return self.entries[index]

    def _hold_head(self, conn: sa.Connection) -> None:
        """Lock the log's head in ``conn``'s transaction (appends by others wait), then
        read what they committed before."""
        conn.execute(
            sa.update(custody_logs)
            .where(custody_logs.c.origin == self.origin)
            .values(size=custody_logs.c.size)
        )
        self.refresh()

    def recover(self, signer: Signer) -> list[str]:
        """Nothing to repair: a database transaction is whole or absent."""
        del signer
        return []

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint_path(self, size: int) -> Path:
        """Where ``export_files`` writes the checkpoint of ``size`` (relative)."""
        return Path("log") / CHECKPOINTS / f"{size:012d}.txt"

    def checkpoint_sizes(self) -> list[int]:
        """Sizes with a signed checkpoint, ascending."""
        with self.db.connect() as conn:
            return [
                int(s)
                for s in conn.execute(
                    sa.select(custody_checkpoints.c.size)
                    .where(custody_checkpoints.c.origin == self.origin)
                    .order_by(custody_checkpoints.c.size)
                ).scalars()
            ]

    def open_checkpoint(self, size: int) -> tuple[str, Checkpoint]:
        """The note text and checkpoint for ``size``. Raises ``CheckpointError``."""
        with self.db.connect() as conn:
            note = conn.execute(
                sa.select(custody_checkpoints.c.note).where(
                    custody_checkpoints.c.origin == self.origin,
                    custody_checkpoints.c.size == size,
                )
            ).scalar()
        if note is None:
            raise CheckpointError(f"no checkpoint of size {size} in the database")
        checkpoint = open_note(str(note), verifier_key=self.verifier_key)
        if checkpoint.size != size or checkpoint.origin != self.origin:
            raise CheckpointError(
                f"checkpoint row {size} holds size {checkpoint.size} of {checkpoint.origin!r}"
            )
        return str(note), checkpoint

    def signed_size(self) -> int:
        """The size of the newest signed checkpoint (0: never signed)."""
        with self.db.connect() as conn:
            size = conn.execute(
                sa.select(sa.func.max(custody_checkpoints.c.size)).where(
                    custody_checkpoints.c.origin == self.origin
                )
            ).scalar()
        return int(size or 0)

    def latest_checkpoint(self) -> tuple[str, Checkpoint] | None:
        """The newest signed checkpoint, or ``None`` for a log never signed."""
        size = self.signed_size()
        return self.open_checkpoint(size) if size else None

    def sign(self, signer: Signer) -> Checkpoint | None:
        """Sign a checkpoint for every record appended so far, if this process wins the
        log's signer lock; ``None`` when another process holds it (it signs them).
        Raises ``LogError`` if the log does not extend its newest checkpoint."""
        if self.db.dialect.name != "postgresql":
            return self.sign_held(signer)
        with self.db.connect() as conn:
            won = conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock_key(self.origin))))
            if not won.scalar():
                return None
            conn.commit()
            try:
                return self.sign_held(signer)
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(lock_key(self.origin))))
                conn.commit()

    def sign_held(self, signer: Signer) -> Checkpoint:
        """``sign`` by the process holding the signer lock (``LogSigner``), or on SQLite."""
        self.refresh()
        size = len(self.entries)
        latest = self.latest_checkpoint()
        if latest is not None:
            previous = latest[1]
            if previous.size > size or self.tree.root(previous.size) != previous.root:
                raise LogError(
                    f"the log does not extend its checkpoint of size {previous.size}; "
                    "refusing to sign an inconsistent checkpoint (run amber evidence verify)"
                )
            if previous.size == size:
                return previous
        checkpoint = Checkpoint(self.origin, size, self.tree.root(size))
        with self.db.begin() as conn:
            insert = _insert(conn, custody_checkpoints).values(
                origin=self.origin,
                size=size,
                root=checkpoint.root,
                note=signer.sign(checkpoint),
                signed_at=datetime.now(UTC),
            )
            conn.execute(insert.on_conflict_do_nothing())
        return checkpoint

    # -- files ---------------------------------------------------------------------------

    def export_files(self, directory: Path) -> int:
        """Write the log as a vault's ``log/`` folder holds it (``records.jsonl`` and
        ``checkpoints/<size>.txt``) under ``directory``; returns the records written."""
        self.refresh()
        log_dir = directory / "log"
        (log_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        write_atomic(log_dir / RECORDS, b"".join(e.line + b"\n" for e in self.entries))
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(custody_checkpoints.c.size, custody_checkpoints.c.note).where(
                    custody_checkpoints.c.origin == self.origin
                )
            ).all()
        for row in rows:
            write_atomic(directory / self.checkpoint_path(int(row.size)), str(row.note).encode())
        return len(self.entries)

    def import_lines(self, lines: Sequence[bytes], *, batch: int = 1000) -> int:
        """Append file-log records not here yet (a migration), in order, ``batch`` per
        transaction; returns how many were added. Raises ``LogError`` when the records
        here are not the first of ``lines``, byte for byte."""
        self.refresh()
        for entry, line in zip(self.entries, lines, strict=False):
            if entry.line != line:
                raise LogError(
                    f"record {entry.index} of {self.origin} in the database differs from the "
                    "file log's: not the same log; nothing imported"
                )
        if len(self.entries) > len(lines):
            raise LogError(
                f"the database holds {len(self.entries)} records of {self.origin}, the file "
                f"log only {len(lines)}: not the same log; nothing imported"
            )
        start = len(self.entries)
        for at in range(start, len(lines), batch):
            with self.db.begin() as conn:
                self.append_in(conn, [json.loads(line) for line in lines[at : at + batch]])
        self.refresh()
        return len(lines) - start

    def import_checkpoint(self, note: str, checkpoint: Checkpoint) -> None:
        """Keep a checkpoint signed elsewhere (the file log's), if its size has none."""
        with self.db.begin() as conn:
            insert = _insert(conn, custody_checkpoints).values(
                origin=self.origin,
                size=checkpoint.size,
                root=checkpoint.root,
                note=note,
                signed_at=datetime.now(UTC),
            )
            conn.execute(insert.on_conflict_do_nothing())


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT that can skip a row whose key exists, in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


class LogSigner:
    """The elected signer of a long-running process (``amber serve``): it waits for the
    log's advisory lock, and while it holds it, signs a checkpoint every ``every``
    seconds when records were appended. One per deployment signs; the others stand by
    and take over when its process ends (PostgreSQL frees the lock with the session)."""

    def __init__(self, log: DatabaseLog, signer: Signer, *, every: float = 1.0) -> None:
        self.log = log
        self.signer = signer
        self.every = every
        self.leading = False

    def run(self, stop: threading.Event, on_error: Callable[[Exception], None]) -> None:
        """Sign until ``stop`` is set (then sign what is left, if leading)."""
        if self.log.db.dialect.name != "postgresql":
            self._loop(stop, on_error)
            return
        key = lock_key(self.log.origin)
        while not stop.is_set():
            try:
                with self.log.db.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    while not stop.is_set():
                        won = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
                        if won:
                            break
                        stop.wait(self.every)
                    if stop.is_set():
                        return
                    self.leading = True
                    try:
                        self._loop(stop, on_error, conn)
                    finally:
                        self.leading = False
                        conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                return
            except sa.exc.DBAPIError as exc:  # the server went away: stand for election again
                on_error(exc)
                stop.wait(self.every)

    def _loop(
        self,
        stop: threading.Event,
        on_error: Callable[[Exception], None],
        conn: sa.Connection | None = None,
    ) -> None:
        while True:
            stopping = stop.wait(self.every)
            try:
                if conn is not None:
                    conn.execute(sa.select(1))  # the lock's session is alive
                self.log.refresh()
                if len(self.log) > self.log.signed_size():
                    self.log.sign_held(self.signer)
            except sa.exc.DBAPIError:
                raise
            except Exception as exc:  # a damaged log: say so, keep serving
                on_error(exc)
            if stopping:
                return
