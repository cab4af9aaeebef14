"""Exchanges: banks kept in step with hash-sharing sources.

An exchange reads one source (a ThreatExchange privacy group, an NCMEC feed, a local
hash file, ...) through python-threatexchange's ``SignalExchangeAPI`` and fills one amber
bank with what it finds: each upstream record of a type amber hashes (PDQ, MD5, SHA-256)
is one bank entry (source ``exchange:<name>``). A fetch runs the API's ``fetch_iter`` from
the stored checkpoint and applies its updates in batches (``amber.exchange_fetch``); each
batch's checkpoint is stored only once the batch is in the bank, so a fetch that stops
anywhere resumes from the last stored checkpoint, and records are keyed by the API's own
key, so nothing is added twice.

What a record does to the bank (``docs/exchanges.md``):

- new, with an opinion that banks it (``Opinion.banks``): an entry is added;
- deleted upstream, or no longer sent by a source that always sends everything: its entry
  is deleted and the record forgotten;
- its opinion turns against it (our own false-positive mark, or others' negative or
  disputed opinions): its entry is deleted and the record held, so that the entry comes
  back if the opinion turns again;
- its values change: the entry is replaced;
- its entry was deleted here (``amber bank``'s entry delete): a fetch does not bring it
  back, until upstream deletes the record.

Types amber does not hash are counted and skipped, not errors. The status of every
exchange (last fetch, its counts and error, the checkpoint) is in ``status``.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amber.banks import KEEP, LOCAL_ACTOR, BankAction, BankStore
from amber.errors import ConflictError, NotFoundError, UserError
from amber.exchange_apis import ApiType, dump, installed_apis
from amber.exchange_fetch import (
    BATCH,
    Fetch,
    FetchCounts,
    FetchResult,
    ItemState,
    SourceError,
    reason,
)
from amber.registry import Registry
from amber.signals import SignalType
from amber.store.tables import banks, exchange_credentials, exchange_items
from amber.store.tables import exchanges as exchanges_table

__all__ = [
    "ApiStatus",
    "Exchange",
    "ExchangeStatus",
    "ExchangeStore",
    "FetchCounts",
    "FetchResult",
    "SourceError",
]

#: An exchange name: a bank name short enough that ``exchange:<name>`` is one too.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,189}")


@dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange: its API type, settings (never its credentials) and the bank it fills."""

    id: int
    name: str
    api: str
    bank: str
    config: dict[str, Any]
    endpoint: str | None
    enabled: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The exchange as the CLI (``--format jsonl``) and the API write it."""
        return {
            "name": self.name,
            "api": self.api,
            "bank": self.bank,
            "config": self.config,
            "endpoint": self.endpoint,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
        }

    def to_hma(self) -> dict[str, Any]:
        """HMA's ``GET /c/exchange/<name>`` body: the collaboration config's fields."""
        return {"name": self.name, "api": self.api, "enabled": self.enabled, **self.config}


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    """How an exchange's fetches go: the one running, the last one (when, whether it
    succeeded, its error and counts), the checkpoint the next resumes from, and what the
    exchange holds: ``items`` upstream records, of which ``entries`` are in the bank,
    ``held`` kept out by an opinion and ``removed`` deleted here."""

    exchange: Exchange
    running_since: datetime | None
    last_started_at: datetime | None
    last_ended_at: datetime | None
    last_succeeded: bool | None
    last_error: str | None
    last_counts: FetchCounts | None
    up_to_date: bool
    checkpoint: dict[str, Any] | None
    checkpoint_at: datetime | None
    items: int
    entries: int
    held: int
    removed: int
    fetches: int
    failures: int
    fetched_total: int

    def to_json(self) -> dict[str, Any]:
        """The status as ``amber exchange status --format jsonl`` and the API write it."""
        return {
            **self.exchange.to_json(),
            "running_since": _iso(self.running_since),
            "last_fetch": {
                "started_at": _iso(self.last_started_at),
                "ended_at": _iso(self.last_ended_at),
                "succeeded": self.last_succeeded,
                "error": self.last_error,
                "counts": None if self.last_counts is None else self.last_counts.to_json(),
            },
            "up_to_date": self.up_to_date,
            "checkpoint": self.checkpoint,
            "checkpoint_at": _iso(self.checkpoint_at),
            "items": self.items,
            "entries": self.entries,
            "held": self.held,
            "removed": self.removed,
            "fetches": self.fetches,
            "failures": self.failures,
            "fetched_total": self.fetched_total,
        }

    def to_hma(self) -> dict[str, Any]:
        """HMA's ``GET /c/exchange/<name>/status`` body (pytx's ``FetchStatus`` fields,
        Unix seconds)."""
        return {
            "checkpoint_ts": _seconds(self.checkpoint_at),
            "running_fetch_start_ts": _seconds(self.running_since),
            "last_fetch_complete_ts": _seconds(self.last_ended_at),
            "last_fetch_succeeded": self.last_succeeded,
            "up_to_date": self.up_to_date,
            "fetched_items": self.items,
        }


@dataclass(frozen=True, slots=True)
class ApiStatus:
    """An installed API type and whether its credentials are set."""

    api: ApiType
    has_credentials: bool

    def to_json(self) -> dict[str, Any]:
        """As ``amber exchange apis --format jsonl`` and the API write it (never the
        credentials themselves)."""
        credential_fields = self.api.credential_fields()
        return {
            "name": self.api.name,
            "supports_credentials": self.api.supports_credentials,
            "has_credentials": self.has_credentials,
            "takes_endpoint": self.api.takes_endpoint,
            "snapshot": self.api.snapshot,
            "config_fields": [f.to_json() for f in self.api.config_fields()],
            "credential_fields": (
                None if credential_fields is None else [f.to_json() for f in credential_fields]
            ),
        }

    def to_hma(self) -> dict[str, bool]:
        """HMA's ``/c/exchanges/api/<name>`` body."""
        return {
            "supports_authentification": self.api.supports_credentials,
            "has_set_authentification": self.has_credentials,
        }


class ExchangeStore:
    """Exchanges on one database: their API types and credentials, the exchanges, their
    fetches and status. Bank changes go through ``banks`` under ``write_lock``."""

    def __init__(
        self,
        db: sa.Engine,
        banks: BankStore,
        signals: Registry[SignalType],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        write_lock: AbstractContextManager[Any] | None = None,
        apis: Registry[ApiType] | None = None,
        after_fetch: Callable[[], object] = lambda: None,
    ) -> None:
        self.db = db
        self.banks = banks
        self.signals = signals
        self.clock = clock
        self.write_lock = write_lock if write_lock is not None else threading.Lock()
        self.apis = installed_apis() if apis is None else apis
        #: Runs after every fetch, however it ended (the engine's retro-hunt of the
        #: entries it added: ``amber.retrohunt``).
        self.after_fetch = after_fetch

    # -- API types ---------------------------------------------------------------------------

    def api_types(self) -> list[ApiStatus]:
        """Every installed API type, by name, with whether its credentials are set (HMA's
        ``/c/exchanges/apis`` lists their names)."""
        with self.db.connect() as conn:
            have = set(conn.execute(sa.select(exchange_credentials.c.api)).scalars())
        return [ApiStatus(a, a.name in have) for a in sorted(self.apis, key=lambda a: a.name)]

    def api_type(self, name: str) -> ApiStatus:
        """One API type (HMA's ``GET /c/exchanges/api/<name>``: ``to_hma()``; its form
        fields: ``.api.schema()``). Raises ``NotFoundError`` naming the installed ones."""
        api = self.apis.get(name)
        return ApiStatus(api, self._credentials(name) is not None)

    def set_credentials(self, name: str, credentials: Mapping[str, Any] | None) -> ApiStatus:
        """Set (or with ``None`` or ``{}``, clear) API type ``name``'s credentials, used by
        every exchange of the type (HMA's ``POST /c/exchanges/api/<name>``).

        Raises ``NotFoundError`` for an unknown type, ``UserError`` for one that takes no
        credentials or credentials that do not fit its fields.
        """
        api = self.apis.get(name)
        with self.db.begin() as conn:
            conn.execute(exchange_credentials.delete().where(exchange_credentials.c.api == name))
            if credentials:
                conn.execute(
                    exchange_credentials.insert().values(
                        api=name,
                        credentials=dump(api.credentials(credentials)),
                        updated_at=self.clock(),
                    )
                )
            elif not api.supports_credentials:
                raise UserError(f"{name} takes no credentials")
        return ApiStatus(api, bool(credentials))

    def _credentials(self, api: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            found = conn.execute(
                sa.select(exchange_credentials.c.credentials).where(
                    exchange_credentials.c.api == api
                )
            ).scalar_one_or_none()
        return None if found is None else dict(found)

    # -- exchanges ---------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        api: str,
        config: Mapping[str, Any] | None = None,
        bank: str | None = None,
        endpoint: str | None = None,
        credentials: Mapping[str, Any] | None = None,
        enabled: bool = True,
        action: BankAction | str | None = None,
        label: str | None = None,
        actor: str = LOCAL_ACTOR,
    ) -> Exchange:
        """Add an exchange of API type ``api`` with its settings ``config`` (HMA's
        ``POST /c/exchanges``: ``bank`` and ``api_json``), filling ``bank`` (default: the
        exchange's name), which is created (with ``action`` and ``label``) if it does not
        exist. ``credentials`` set the API type's (``set_credentials``). A local file's
        relative ``filename`` is stored absolute.

        Raises ``UserError`` for a bad name, setting or endpoint, ``NotFoundError`` for an
        unknown API type, ``ConflictError`` if the exchange exists.
        """
        _check_name(name)
        api_type = self.apis.get(api)
        settings = _settings(api_type, name, dict(config or {}), enabled)
        endpoint = _check_endpoint(api_type, endpoint)
        if credentials:
            api_type.credentials(credentials)  # refused now, before anything is stored
        bank = name if bank is None else bank
        if self._find(name) is not None:
            raise ConflictError(f"exchange {name!r} already exists; choose another name")
        if bank in {b.name for b in self.banks.all()}:
            if action is not None or label is not None:
                raise UserError(
                    f"bank {bank!r} exists already: its action and label are its own "
                    "(amber bank); leave out the action and label, or fill a new bank"
                )
        else:
            self.banks.create(
                bank,
                action=BankAction.remove if action is None else action,
                label=label,
                actor=actor,
            )
        bank_id = self.banks.get(bank).id
        now = self.clock()
        with self.db.begin() as conn:
            if conn.execute(
                sa.select(exchanges_table.c.id).where(exchanges_table.c.name == name)
            ).first():
                raise ConflictError(f"exchange {name!r} already exists; choose another name")
            conn.execute(
                exchanges_table.insert().values(
                    name=name,
                    api=api,
                    bank_id=bank_id,
                    config=settings,
                    endpoint=endpoint,
                    enabled=enabled,
                    created_at=now,
                )
            )
        if credentials:
            self.set_credentials(api, credentials)
        return self.get(name)

    def get(self, name: str) -> Exchange:
        """The exchange called ``name``. Raises ``NotFoundError`` naming the known ones."""
        found = self._find(name)
        if found is None:
            known = ", ".join(e.name for e in self.all()) or "none yet"
            raise NotFoundError(
                f"no exchange called {name!r} (exchanges: {known}); add one with: "
                f"amber exchange add {name} --api TYPE"
            )
        return found

    def all(self) -> list[Exchange]:
        """Every exchange, by name."""
        with self.db.connect() as conn:
            rows = conn.execute(_exchange_rows().order_by(exchanges_table.c.name)).all()
        return sorted((_exchange(r) for r in rows), key=lambda e: e.name)

    def _find(self, name: str) -> Exchange | None:
        with self.db.connect() as conn:
            row = conn.execute(_exchange_rows().where(exchanges_table.c.name == name)).first()
        return None if row is None else _exchange(row)

    def update(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        config: Mapping[str, Any] | None = None,
        endpoint: str | None = KEEP,
    ) -> Exchange:
        """Enable or disable an exchange (a disabled one is not fetched), or change its
        settings or endpoint (``None`` clears it). Raises ``NotFoundError``/``UserError``."""
        exchange = self.get(name)
        api = self.apis.get(exchange.api)
        values: dict[str, Any] = {}
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise UserError(f"enabled {enabled!r} is not true or false")
            values["enabled"] = enabled
        if config is not None:
            values["config"] = _settings(api, name, dict(config), exchange.enabled)
        if endpoint is not KEEP:
            values["endpoint"] = _check_endpoint(api, endpoint)
        if values:
            with self.db.begin() as conn:
                conn.execute(
                    exchanges_table.update()
                    .where(exchanges_table.c.id == exchange.id)
                    .values(**values)
                )
        return self.get(name)

    def delete(self, name: str, *, delete_bank: bool = False, actor: str = LOCAL_ACTOR) -> Exchange:
        """Delete an exchange and what it knows of its records (HMA's ``DELETE
        /c/exchange/<name>``). Its bank and entries stay, no longer updated, unless
        ``delete_bank``. Returns what it was; raises ``NotFoundError``."""
        exchange = self.get(name)
        with self.db.begin() as conn:
            conn.execute(exchanges_table.delete().where(exchanges_table.c.id == exchange.id))
        if delete_bank:
            with self.write_lock:
                self.banks.delete(exchange.bank, actor=actor)
        return exchange

    # -- status ----------------------------------------------------------------------------

    def status(self, name: str) -> ExchangeStatus:
        """How exchange ``name``'s fetches go. Raises ``NotFoundError``."""
        exchange = self.get(name)
        return self._statuses([exchange])[0]

    def statuses(self) -> list[ExchangeStatus]:
        """How every exchange's fetches go, by name."""
        return self._statuses(self.all())

    def _statuses(self, found: Sequence[Exchange]) -> list[ExchangeStatus]:
        ids = [e.id for e in found]
        if not ids:
            return []
        t, items = exchanges_table, exchange_items
        with self.db.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(t).where(t.c.id.in_(ids)))}
            tallies: dict[int, Counter[str]] = {i: Counter() for i in ids}
            for r in conn.execute(
                sa.select(
                    items.c.exchange_id,
                    items.c.state,
                    (items.c.entry_id.is_not(None)).label("linked"),
                    sa.func.count().label("n"),
                )
                .where(items.c.exchange_id.in_(ids))
                .group_by(items.c.exchange_id, items.c.state, items.c.entry_id.is_not(None))
            ):
                tally = tallies[int(r.exchange_id)]
                tally["items"] += int(r.n)
                if r.state == ItemState.banked and r.linked:
                    tally["entries"] += int(r.n)
                elif r.state in (ItemState.held, ItemState.removed):
                    tally[str(r.state)] += int(r.n)
        out = []
        for exchange in found:
            r, tally = rows[exchange.id], tallies[exchange.id]
            out.append(
                ExchangeStatus(
                    exchange=exchange,
                    running_since=r.running_since,
                    last_started_at=r.last_started_at,
                    last_ended_at=r.last_ended_at,
                    last_succeeded=r.last_succeeded,
                    last_error=r.last_error,
                    last_counts=None
                    if r.last_counts is None
                    else FetchCounts.from_json(r.last_counts),
                    up_to_date=bool(r.up_to_date),
                    checkpoint=r.checkpoint,
                    checkpoint_at=r.checkpoint_at,
                    items=tally["items"],
                    entries=tally["entries"],
                    held=tally["held"],
                    removed=tally["removed"],
                    fetches=int(r.fetches),
                    failures=int(r.failures),
                    fetched_total=int(r.fetched_total),
                )
            )
        return out

    # -- fetching ----------------------------------------------------------------------------

    def fetch_all(
        self,
        names: Iterable[str] | None = None,
        *,
        batch_size: int = BATCH,
        on_start: Callable[[str], object] = lambda name: None,
    ) -> list[FetchResult]:
        """Fetch each named exchange, or every enabled one, in turn (``on_start`` is told
        each name first). One exchange's failure (its source, its settings, a fetch already
        running) is its result's ``error`` and never stops the others."""
        wanted = [e.name for e in self.all() if e.enabled] if names is None else list(names)
        results = []
        for name in wanted:
            on_start(name)
            try:
                results.append(self.fetch(name, batch_size=batch_size))
            except Exception as exc:  # one exchange's failure, whatever it is, is its own
                counts = exc.counts if isinstance(exc, SourceError) else FetchCounts()
                results.append(FetchResult(name, counts, False, reason(exc)))
        return results

    def fetch(self, name: str, *, batch_size: int = BATCH) -> FetchResult:
        """Fetch exchange ``name``'s updates from its checkpoint and apply them to its
        bank, ``batch_size`` records a transaction group; the status records how it went.

        Raises ``NotFoundError``, ``UserError`` for a disabled exchange or bad settings,
        ``ConflictError`` while another fetch of it runs, ``SourceError`` (exit 3, HTTP 502)
        when its source fails: what came before the failure is kept, and the next fetch
        resumes from there.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"batch_size {batch_size!r} is not a whole number of records >= 1")
        exchange = self.get(name)
        if not exchange.enabled:
            raise UserError(
                f"exchange {name!r} is disabled; enable it with: amber exchange update "
                f"{name} --enable"
            )
        api = self.apis.get(exchange.api)
        collab = api.collab(exchange.name, exchange.config)
        credentials = self._credentials(api.name)
        try:
            return Fetch(
                self, exchange, api, collab, credentials=credentials, batch_size=batch_size
            ).run()
        finally:  # what a failed fetch added before it failed is kept: hunt it too
            self.after_fetch()


def _exchange_rows() -> sa.Select[Any]:
    t = exchanges_table
    return sa.select(
        t.c.id,
        t.c.name,
        t.c.api,
        banks.c.name.label("bank"),
        t.c.config,
        t.c.endpoint,
        t.c.enabled,
        t.c.created_at,
    ).join(banks, banks.c.id == t.c.bank_id)


def _exchange(row: Any) -> Exchange:
    return Exchange(
        int(row.id),
        str(row.name),
        str(row.api),
        str(row.bank),
        dict(row.config or {}),
        row.endpoint,
        bool(row.enabled),
        row.created_at,
    )


def _check_name(name: object) -> None:
    """Raise ``UserError`` unless ``name`` may name an exchange."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(
            f"exchange name {name!r} is not allowed; use 1-190 letters, digits, '_', '.' or "
            "'-', starting with a letter or digit"
        )


def _settings(api: ApiType, name: str, config: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``config`` checked against API type ``api``'s settings and written as it stores
    them (name, api and enabled aside; a local file's ``filename`` absolute, from the
    current folder). Raises ``UserError``."""
    if isinstance(config.get("filename"), str) and api.snapshot:
        config = {**config, "filename": str(Path(config["filename"]).expanduser().absolute())}
    collab = api.collab(name, config, enabled=enabled)
    return {k: v for k, v in dump(collab).items() if k not in ("name", "api", "enabled")}


def _check_endpoint(api: ApiType, endpoint: str | None) -> str | None:
    """``endpoint`` if API type ``api`` takes one and it is an HTTP(S) URL. Raises
    ``UserError``."""
    if endpoint is None:
        return None
    if not api.takes_endpoint:
        raise UserError(f"{api.name} takes no endpoint (only fb_threatexchange does)")
    if not isinstance(endpoint, str) or not re.fullmatch(
        r"https?://[^\s/?#]+(/[^\s?#]*)?", endpoint
    ):
        raise UserError(
            f"endpoint {endpoint!r} is not an http:// or https:// URL without a query, "
            "e.g. https://graph.facebook.com/v26.0"
        )
    return endpoint.rstrip("/")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _seconds(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())
