"""One fetch of an exchange (``amber.exchanges``), from claiming it to recording how it
ended.

A fetch runs the API's ``fetch_iter`` from the stored checkpoint and applies its updates
in batches: each batch's entries are deleted and added through the bank store, then its
records and checkpoint are stored, so a fetch that stops anywhere resumes from the last
checkpoint stored without adding a record twice. ``docs/exchanges.md`` has the rules that
map upstream records and opinions to bank entries.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.banks import NewEntry
from amber.errors import AmberError, ConflictError, ExternalError, NotFoundError
from amber.exchange_apis import PYTX_SIGNAL_TYPES, ApiType, Converted, convert, dump, key_text
from amber.store.tables import bank_entries, banks, exchange_items
from amber.store.tables import exchanges as exchanges_table

if TYPE_CHECKING:
    from amber.exchanges import Exchange, ExchangeStore

#: Upstream records applied in one group of transactions (entries deleted, entries added,
#: records and checkpoint stored).
BATCH = 5000
#: A fetch that has not shown it is alive for this long is taken to have died: another
#: fetch of the exchange may start (and first cleans up after it).
STALE_AFTER = timedelta(minutes=15)
#: The source of an exchange's entries, and who changed the bank in its audit.
SOURCE = "exchange:{}"
#: Longest error text kept in an exchange's status.
MAX_ERROR = 2000
_QUERY = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")


class ItemState(StrEnum):
    """Where an upstream record stands in the bank: ``banked`` (it has an entry),
    ``held`` (an opinion keeps it out) or ``removed`` (its entry was deleted here)."""

    banked = "banked"
    held = "held"
    removed = "removed"


@dataclass(frozen=True, slots=True)
class FetchCounts:
    """What one fetch did: updates received (``fetched``), entries added, entries removed
    (deleted upstream or no longer sent), records newly held out by an opinion, records of
    types amber does not hash (``skipped``, by type name) and invalid values."""

    fetched: int = 0
    added: int = 0
    removed: int = 0
    held: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    invalid: int = 0

    def to_json(self) -> dict[str, Any]:
        """The counts as stored and as the CLI and API write them."""
        return {
            "fetched": self.fetched,
            "added": self.added,
            "removed": self.removed,
            "held": self.held,
            "skipped": dict(sorted(self.skipped.items())),
            "invalid": self.invalid,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FetchCounts:
        """Counts as ``to_json`` wrote them."""
        return cls(
            int(data.get("fetched", 0)),
            int(data.get("added", 0)),
            int(data.get("removed", 0)),
            int(data.get("held", 0)),
            {str(k): int(v) for k, v in dict(data.get("skipped") or {}).items()},
            int(data.get("invalid", 0)),
        )


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One exchange's fetch: its counts, whether it read everything the source had, and
    the error that stopped it (``None`` when it succeeded)."""

    exchange: str
    counts: FetchCounts
    up_to_date: bool
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """Did the fetch end without an error?"""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The result as ``amber exchange fetch --format jsonl`` and the API write it."""
        return {
            "exchange": self.exchange,
            "succeeded": self.succeeded,
            "up_to_date": self.up_to_date,
            "error": self.error,
            **self.counts.to_json(),
        }


class SourceError(ExternalError):
    """An exchange's source (its API, server or file) failed. ``reason`` is what it said
    (URLs without their query strings, which may hold tokens); ``counts`` what the fetch
    did before."""

    def __init__(self, exchange: str, reason: str) -> None:
        super().__init__(
            f"exchange {exchange!r}: its source failed: {reason}; what came before is kept "
            "and the next fetch resumes from there"
        )
        self.exchange = exchange
        self.reason = reason
        self.counts = FetchCounts()


class Fetch:
    """One fetch of ``exchange`` for ``store``: ``run()`` it once."""

    def __init__(
        self,
        store: ExchangeStore,
        exchange: Exchange,
        api: ApiType,
        collab: Any,
        *,
        credentials: Mapping[str, Any] | None,
        batch_size: int = BATCH,
    ) -> None:
        self.db = store.db
        self.banks = store.banks
        self.signals = store.signals
        self.clock = store.clock
        self.write_lock = store.write_lock
        self.exchange = exchange
        self.id = exchange.id
        self.name = exchange.name
        self.api = api
        self.collab = collab
        self.credentials = credentials
        self.batch_size = batch_size
        self.actor = SOURCE.format(exchange.name)
        self.bank_id = 0
        self.generation = 0
        self.sweep: int | None = None
        self.fetched = self.added = self.removed = self.held = self.invalid = 0
        self.skipped: Counter[str] = Counter()

    def counts(self) -> FetchCounts:
        """What the fetch has done so far."""
        return FetchCounts(
            self.fetched, self.added, self.removed, self.held, dict(self.skipped), self.invalid
        )

    def run(self) -> FetchResult:
        """Claim the exchange, read its source from the checkpoint into its bank and
        record how it went. Raises ``ConflictError`` while another fetch of it is alive,
        ``SourceError`` when the source fails (what came before is kept)."""
        checkpoint = self._claim()
        try:
            self._recover()
            self._read(checkpoint)
        except BaseException as exc:
            if isinstance(exc, SourceError):
                exc.counts = self.counts()
            with suppress(Exception):  # the database may be what failed
                self._finish(error=reason(exc))
            raise
        self._finish(error=None)
        return FetchResult(self.name, self.counts(), up_to_date=True)

    def _claim(self) -> Any:
        """Mark the exchange's fetch as started (unless one is alive) and decide where it
        starts: the stored checkpoint (returned), or from nothing (``None``: the first
        fetch, a stale checkpoint, a source that sends everything each time), whose end
        sweeps away the records it did not send."""
        t = exchanges_table
        now = self.clock()
        with self.db.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == self.id)).one()
            try:
                checkpoint = self.api.checkpoint(row.checkpoint)
            except Exception:  # a checkpoint an older pytx wrote: start from nothing
                checkpoint = None
            full = checkpoint is None or self.api.snapshot or checkpoint.is_stale()
            self.bank_id = int(row.bank_id)
            self.generation = int(row.generation) + (1 if full else 0)
            self.sweep = self.generation if full else row.sweep_generation
            claimed = conn.execute(
                t.update()
                .where(
                    t.c.id == self.id,
                    sa.or_(t.c.heartbeat_at.is_(None), t.c.heartbeat_at < now - STALE_AFTER),
                )
                .values(
                    running_since=now,
                    heartbeat_at=now,
                    last_started_at=now,
                    generation=self.generation,
                    sweep_generation=self.sweep,
                )
            )
            if claimed.rowcount != 1:
                raise ConflictError(
                    f"a fetch of exchange {self.name!r} is running (since "
                    f"{_iso(row.running_since)}); wait for it to end"
                )
        return None if full else checkpoint

    def _read(self, checkpoint: Any) -> None:
        """Run the API's ``fetch_iter`` to its end and apply what it yields; sweep at the
        end of a fetch from nothing."""
        try:
            client = self.api.client(self.collab, self.credentials, self.exchange.endpoint)
            deltas = iter(client.fetch_iter(PYTX_SIGNAL_TYPES, checkpoint))
        except Exception as exc:  # pytx and its clients raise anything: it is the source's
            raise SourceError(self.name, describe(exc)) from exc
        pending: dict[Any, Any] = {}
        latest = None
        while True:
            try:
                delta = next(deltas)
            except StopIteration:
                break
            except Exception as exc:  # the source failed: keep what came before
                if pending or latest is not None:
                    self._apply(pending, latest)
                raise SourceError(self.name, describe(exc)) from exc
            pending.update(delta.updates)
            latest = delta.checkpoint
            if len(pending) >= self.batch_size:
                self._apply(pending, latest)
                pending, latest = {}, None
        if pending or latest is not None:
            self._apply(pending, latest)
        self._sweep()

    def _apply(self, updates: Mapping[Any, Any], checkpoint: Any) -> None:
        """Apply ``updates`` (record key -> record, ``None`` for a deletion) in chunks of
        ``batch_size``; the checkpoint is stored with the last chunk."""
        records = list(updates.items())
        for start in range(0, max(len(records), 1), self.batch_size):
            last = start + self.batch_size >= len(records)
            self._apply_chunk(
                records[start : start + self.batch_size], checkpoint if last else None
            )

    def _apply_chunk(self, records: Sequence[tuple[Any, Any]], checkpoint: Any) -> None:
        """One group of transactions: delete the entries that go, add the new ones, then
        store the records and the checkpoint. ``recover_after`` marks the group until its
        records are stored, so a crash in between leaves entries a later fetch deletes
        (``_recover``) before the records come again."""
        now = self.clock()
        targets: list[tuple[str, str, Converted | None]] = []
        for key, record in records:
            text = key_text(key)
            converted = (
                None
                if record is None
                else convert(self.api, self.collab, self.signals, key, record)
            )
            if converted is not None:
                self.skipped.update(converted.skipped)
                self.invalid += converted.invalid
                if not converted.values:  # nothing amber can bank: as if deleted
                    converted = None
            targets.append((_digest(text), text, converted))
        self.fetched += len(records)
        rows, present = self._known(targets)
        deletes: list[int] = []
        adds: list[NewEntry] = []
        added_for: list[str] = []
        inserts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        forget: list[str] = []
        seen: list[str] = []
        for digest, text, converted in targets:
            row = rows.get(digest)
            if converted is None:
                if row is not None:
                    forget.append(digest)
                    if row.entry_id is not None:
                        deletes.append(int(row.entry_id))
                        self.removed += 1
                continue
            state = None if row is None else ItemState(row.state)
            entry = None if row is None or row.entry_id is None else int(row.entry_id)
            same = row is not None and row.values_digest == converted.digest
            if (
                state is ItemState.banked
                and entry is not None
                and same
                and converted.opinion.banks
                and entry not in present
            ):  # its entry was deleted here: keep it out
                state, entry = ItemState.removed, None
            if state is ItemState.removed:
                pass
            elif converted.opinion.banks:
                if entry is None or not same:
                    if entry is not None:
                        deletes.append(entry)
                    entry = None
                    added_for.append(digest)
                    adds.append(
                        NewEntry(
                            converted.values,
                            source=self.actor,
                            metadata={"exchange": self.name, "key": text[:1000]},
                        )
                    )
                state = ItemState.banked
            else:
                if entry is not None:
                    deletes.append(entry)
                    entry = None
                if state is not ItemState.held:
                    self.held += 1
                state = ItemState.held
            values = {
                "key_digest": digest,
                "key": text,
                "state": state.value,
                "opinion": converted.opinion.value,
                "entry_id": entry,
                "values_digest": converted.digest,
                "seen": self.generation,
                "updated_at": now,
            }
            if row is None:
                inserts.append({"exchange_id": self.id, **values})
            elif digest in added_for or (
                row.state,
                row.entry_id,
                row.values_digest,
                row.opinion,
            ) != (
                state.value,
                entry,
                converted.digest,
                converted.opinion.value,
            ):
                changes.append({"b_exchange": self.id, "b_digest": digest, **values})
            elif self.sweep is not None:
                seen.append(digest)
        self._write(deletes, adds, added_for, inserts, changes, forget, seen, checkpoint)

    def _known(
        self, targets: Sequence[tuple[str, str, Converted | None]]
    ) -> tuple[dict[str, Any], set[int]]:
        """The stored records among ``targets``, and which of their entries still exist."""
        digests = [d for d, _, _ in targets]
        rows: dict[str, Any] = {}
        present: set[int] = set()
        with self.db.connect() as conn:
            for part in _chunks(digests):
                for r in conn.execute(
                    sa.select(exchange_items).where(
                        exchange_items.c.exchange_id == self.id,
                        exchange_items.c.key_digest.in_(part),
                    )
                ):
                    rows[str(r.key_digest)] = r
            linked = [int(r.entry_id) for r in rows.values() if r.entry_id is not None]
            for part in _chunks(linked):
                present.update(
                    int(i)
                    for i in conn.execute(
                        sa.select(bank_entries.c.id).where(bank_entries.c.id.in_(part))
                    ).scalars()
                )
        return rows, present

    def _write(
        self,
        deletes: list[int],
        adds: list[NewEntry],
        added_for: list[str],
        inserts: list[dict[str, Any]],
        changes: list[dict[str, Any]],
        forget: list[str],
        seen: list[str],
        checkpoint: Any,
    ) -> None:
        t, items = exchanges_table, exchange_items
        with self.write_lock:
            bank = self._bank_name()
            if adds:
                with self.db.begin() as conn:
                    highest = conn.execute(sa.select(sa.func.max(bank_entries.c.id))).scalar()
                    conn.execute(
                        t.update().where(t.c.id == self.id).values(recover_after=highest or 0)
                    )
            if deletes:
                self.banks.delete_entries(bank, deletes, actor=self.actor)
            ids = self.banks.add_entries(bank, adds, actor=self.actor) if adds else []
            self.added += len(ids)
            entry_of = dict(zip(added_for, ids, strict=True))
            for values in (*inserts, *changes):
                if values["key_digest"] in entry_of:
                    values["entry_id"] = entry_of[values["key_digest"]]
            done: dict[str, Any] = {"heartbeat_at": self.clock(), "recover_after": None}
            if checkpoint is not None:
                progress = checkpoint.get_progress_timestamp()
                done["checkpoint"] = dump(checkpoint)
                done["checkpoint_at"] = (
                    None if progress is None else datetime.fromtimestamp(progress, UTC)
                )
            with self.db.begin() as conn:
                if inserts:
                    conn.execute(items.insert(), inserts)
                if changes:
                    conn.execute(
                        items.update().where(
                            items.c.exchange_id == sa.bindparam("b_exchange"),
                            items.c.key_digest == sa.bindparam("b_digest"),
                        ),
                        changes,
                    )
                for part in _chunks(forget):
                    conn.execute(
                        items.delete().where(
                            items.c.exchange_id == self.id, items.c.key_digest.in_(part)
                        )
                    )
                for part in _chunks(seen):
                    conn.execute(
                        items.update()
                        .where(items.c.exchange_id == self.id, items.c.key_digest.in_(part))
                        .values(seen=self.generation)
                    )
                conn.execute(t.update().where(t.c.id == self.id).values(**done))

    def _bank_name(self) -> str:
        with self.db.connect() as conn:
            name = conn.execute(
                sa.select(banks.c.name).where(banks.c.id == self.bank_id)
            ).scalar_one_or_none()
        if name is None:
            raise NotFoundError(f"the bank of exchange {self.name!r} was deleted")
        return str(name)

    def _recover(self) -> None:
        """Delete the entries a fetch that died added without recording them (above the
        exchange's ``recover_after``): their records come again from the checkpoint."""
        t, items = exchanges_table, exchange_items
        with self.db.connect() as conn:
            after = conn.execute(sa.select(t.c.recover_after).where(t.c.id == self.id)).scalar()
            if after is None:
                return
            recorded = sa.select(items.c.entry_id).where(
                items.c.exchange_id == self.id, items.c.entry_id.is_not(None)
            )
            orphans = [
                int(i)
                for i in conn.execute(
                    sa.select(bank_entries.c.id).where(
                        bank_entries.c.bank_id == self.bank_id,
                        bank_entries.c.source == self.actor,
                        bank_entries.c.id > after,
                        bank_entries.c.id.not_in(recorded),
                    )
                ).scalars()
            ]
        with self.write_lock:
            if orphans:
                self.banks.delete_entries(self._bank_name(), orphans, actor=self.actor)
            with self.db.begin() as conn:
                conn.execute(t.update().where(t.c.id == self.id).values(recover_after=None))

    def _sweep(self) -> None:
        """At the end of a fetch from nothing: delete the records (and their entries) it
        did not send, which the source no longer has."""
        if self.sweep is None:
            return
        t, items = exchanges_table, exchange_items
        with self.db.connect() as conn:
            gone = conn.execute(
                sa.select(items.c.key_digest, items.c.entry_id).where(
                    items.c.exchange_id == self.id, items.c.seen < self.sweep
                )
            ).all()
        for start in range(0, len(gone), self.batch_size):
            part = gone[start : start + self.batch_size]
            entries = [int(r.entry_id) for r in part if r.entry_id is not None]
            with self.write_lock:
                if entries:
                    self.banks.delete_entries(self._bank_name(), entries, actor=self.actor)
                with self.db.begin() as conn:
                    for digests in _chunks([str(r.key_digest) for r in part]):
                        conn.execute(
                            items.delete().where(
                                items.c.exchange_id == self.id, items.c.key_digest.in_(digests)
                            )
                        )
            self.removed += len(entries)
        with self.db.begin() as conn:
            conn.execute(t.update().where(t.c.id == self.id).values(sweep_generation=None))

    def _finish(self, *, error: str | None) -> None:
        """Record how the fetch ended and let the next one start."""
        t = exchanges_table
        counts = self.counts()
        with self.db.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == self.id)
                .values(
                    running_since=None,
                    heartbeat_at=None,
                    last_ended_at=self.clock(),
                    last_succeeded=error is None,
                    last_error=None if error is None else error[:MAX_ERROR],
                    last_counts=counts.to_json(),
                    up_to_date=error is None,
                    fetches=t.c.fetches + 1,
                    failures=t.c.failures + (0 if error is None else 1),
                    fetched_total=t.c.fetched_total + counts.fetched,
                )
            )


def describe(exc: BaseException) -> str:
    """What an exception from a source says, without tokens (URLs lose their query)."""
    from threatexchange.exchanges import auth

    if isinstance(exc, auth.SignalExchangeAPIMissingAuthException):
        text = " ".join(exc.pretty_str().split())
    elif isinstance(exc, auth.SignalExchangeAPIInvalidAuthException):
        text = f"invalid credentials: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _QUERY.sub(r"\1?...", text)[:MAX_ERROR]


def reason(exc: BaseException) -> str:
    """What a fetch's status and result say of the error that stopped it."""
    if isinstance(exc, SourceError):
        return exc.reason
    if isinstance(exc, AmberError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return describe(exc)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
