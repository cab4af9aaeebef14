"""``amber exchange``: banks kept in step with hash-sharing sources (python-threatexchange's
exchanges): add, list, status, fetch, update, remove; the installed API types and their
credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.banks import actor
from amber.cli.options import (
    DbOption,
    FormatOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    plural,
    print_jsonl,
)
from amber.errors import UserError

if TYPE_CHECKING:
    from amber.exchanges import ExchangeStatus, FetchCounts

exchange_app = typer.Typer(
    help="Hash-sharing sources that fill banks (ThreatExchange, NCMEC, files, ...): add, "
    "list, status, fetch.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="The API type's settings: a JSON object, or @FILE holding one (see amber "
        "exchange apis)",
        show_default=False,
    ),
]
CredentialsOption = Annotated[
    str | None,
    typer.Option(
        "--credentials",
        help="The API type's credentials, shared by its exchanges: a JSON object, or @FILE "
        "holding one; stored, never shown",
        show_default=False,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="The server's base URL, for fb_threatexchange (default Meta's Graph API)",
        show_default=False,
    ),
]


def _json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """The JSON object ``text`` gives, inline or as ``@FILE``. Raises ``UserError``."""
    if text is None:
        return None
    where = option
    if text.startswith("@"):
        path = Path(text[1:])
        where = f"{option} file {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UserError(f"cannot read {str(path)!r} ({option}): {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where} is not JSON ({exc}); give an object such as {{}}") from None
    if not isinstance(value, dict):
        raise UserError(f"{where} is {type(value).__name__} JSON, not an object")
    return value


@exchange_app.command("apis")
def exchange_apis(
    format: FormatOption = "table", db: DbOption = None, vault: VaultOption = None
) -> None:
    """List the installed API types: their settings (* required), whether they take
    credentials and whether those are set."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.exchanges.api_types()
    if format == "jsonl":
        print_jsonl(a.to_json() for a in found)
        return
    table = Table("api", "settings", "credentials", "endpoint", "every fetch")
    for a in found:
        settings = ", ".join(f.name + ("*" if f.required else "") for f in a.api.config_fields())
        credentials = "-"
        if a.api.supports_credentials:
            credentials = "set" if a.has_credentials else "not set"
        table.add_row(
            a.api.name,
            settings or "-",
            credentials,
            "yes" if a.api.takes_endpoint else "-",
            "everything" if a.api.snapshot else "changes",
        )
    out.print(table)


@exchange_app.command("credentials")
def exchange_credentials(
    api: Annotated[str, typer.Argument(help="The API type (amber exchange apis)")],
    set_: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="The credentials: a JSON object, or @FILE holding one",
            show_default=False,
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the credentials.")] = False,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Set or clear an API type's credentials (used by all its exchanges); without an
    option, say whether they are set. They are never shown."""
    if set_ is not None and clear:
        raise UserError("give --set or --clear, not both")
    with opened_engine(db, vault, create=set_ is not None) as engine:
        if set_ is None and not clear:
            found = engine.exchanges.api_type(api)
        else:
            found = engine.exchanges.set_credentials(api, _json_object(set_, "--set"))
    if not found.api.supports_credentials:
        err.print(f"{api} takes no credentials")
    else:
        err.print(f"{api} credentials are {'set' if found.has_credentials else 'not set'}")


@exchange_app.command("add")
def exchange_add(
    name: str,
    api: Annotated[str, typer.Option("--api", help="The API type (amber exchange apis)")],
    bank: Annotated[
        str | None,
        typer.Option(
            "--bank", help="The bank it fills (default: NAME), created if new", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    credentials: CredentialsOption = None,
    endpoint: EndpointOption = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            help="A new bank's action: remove (default), restrict, review or allow",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="A new bank's label (default: its name)", show_default=False),
    ] = None,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Add it without fetching it yet.")
    ] = False,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Add an exchange that fills a bank from a hash-sharing source (and the database, if
    it does not exist yet). Fetch it with: amber exchange fetch NAME."""
    settings = _json_object(config, "--config")
    secret = _json_object(credentials, "--credentials")
    with opened_engine(db, vault, create=True) as engine:
        new_bank = (bank or name) not in {b.name for b in engine.banks.all()}
        exchange = engine.exchanges.create(
            name,
            api=api,
            config=settings,
            bank=bank,
            endpoint=endpoint,
            credentials=secret,
            enabled=not disabled,
            action=action,
            label=label,
            actor=actor(),
        )
    err.print(
        f"added exchange {exchange.name!r} ({exchange.api}) filling "
        f"{'new' if new_bank else 'existing'} bank {exchange.bank!r}"
        + ("; credentials set for every " + exchange.api + " exchange" if secret else "")
        + ("; disabled" if disabled else "")
    )


@exchange_app.command("list")
def exchange_list(
    format: FormatOption = "table", db: DbOption = None, vault: VaultOption = None
) -> None:
    """List exchanges: API type, bank, entries and how the last fetch went."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.exchanges.statuses()
    if format == "jsonl":
        print_jsonl(s.to_json() for s in found)
        return
    table = Table("exchange", "api", "bank", "enabled", "entries", "last fetch", "result")
    for s in found:
        table.add_row(
            Text(s.exchange.name),
            s.exchange.api,
            Text(s.exchange.bank),
            "yes" if s.exchange.enabled else "no",
            str(s.entries),
            _when(s.last_ended_at),
            _result(s),
        )
    out.print(table)


@exchange_app.command("status")
def exchange_status(
    name: Annotated[str | None, typer.Argument(help="One exchange (default: all)")] = None,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """How fetches go: the last fetch (when, result, counts, error), the checkpoint the
    next resumes from, and what each exchange holds."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.exchanges.statuses() if name is None else [engine.exchanges.status(name)]
    if format == "jsonl":
        print_jsonl(s.to_json() for s in found)
        return
    table = Table(
        "exchange",
        "last fetch",
        "result",
        "up to date",
        "counts",
        "checkpoint",
        "items",
        "entries",
        "error",
    )
    for s in found:
        table.add_row(
            Text(s.exchange.name),
            _when(s.last_ended_at),
            _result(s),
            "yes" if s.up_to_date else "no",
            "-" if s.last_counts is None else _counts(s.last_counts),
            _when(s.checkpoint_at),
            str(s.items),
            str(s.entries),
            Text(s.last_error or ""),
        )
    out.print(table)


@exchange_app.command("fetch")
def exchange_fetch(
    names: Annotated[
        list[str] | None, typer.Argument(help="Exchanges to fetch (default: every enabled one)")
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, help="Upstream records a transaction group."),
    ] = 5000,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Fetch exchanges' updates from their checkpoints into their banks. One exchange's
    failure does not stop the others; the exit code is 1 if any failed."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        results = engine.exchanges.fetch_all(
            names or None,
            batch_size=batch_size,
            on_start=lambda name: err.print(f"fetching {name} ..."),
        )
    failed = [r for r in results if not r.succeeded]
    for r in failed:
        err.print(f"Error: {r.exchange}: {r.error}")
    if format == "jsonl":
        print_jsonl(r.to_json() for r in results)
    else:
        table = Table("exchange", "result", "counts")
        for r in results:
            table.add_row(Text(r.exchange), "ok" if r.succeeded else "failed", _counts(r.counts))
        out.print(table)
    err.print(
        f"fetched {plural(len(results) - len(failed), 'exchange')}"
        + (f"; {len(failed)} failed" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


@exchange_app.command("update")
def exchange_update(
    name: str,
    enable: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Fetch it, or not.", show_default=False),
    ] = None,
    config: ConfigOption = None,
    endpoint: EndpointOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Enable or disable an exchange, or change its settings or endpoint."""
    from amber.banks import KEEP

    settings = _json_object(config, "--config")
    with opened_engine(db, vault) as engine:
        exchange = engine.exchanges.update(
            name, enabled=enable, config=settings, endpoint=KEEP if endpoint is None else endpoint
        )
    err.print(
        f"exchange {exchange.name!r}: {'enabled' if exchange.enabled else 'disabled'}, "
        f"settings {json.dumps(exchange.config)}"
    )


@exchange_app.command("remove")
def exchange_remove(
    name: str,
    delete_bank: Annotated[
        bool,
        typer.Option("--delete-bank", help="Delete its bank and entries too."),
    ] = False,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Remove an exchange. Its bank and entries stay (no longer updated) unless
    --delete-bank."""
    with opened_engine(db, vault) as engine:
        exchange = engine.exchanges.delete(name, delete_bank=delete_bank, actor=actor())
    err.print(
        f"removed exchange {exchange.name!r}; bank {exchange.bank!r} "
        + ("deleted" if delete_bank else "kept")
    )


def _counts(counts: FetchCounts) -> str:
    """``fetched 12, added 3, removed 1, held 0`` and what was skipped, by type."""
    text = (
        f"fetched {counts.fetched}, added {counts.added}, removed {counts.removed}, "
        f"held {counts.held}"
    )
    skipped = [f"{k} {v}" for k, v in sorted(counts.skipped.items())]
    if counts.invalid:
        skipped.append(f"invalid {counts.invalid}")
    return text + (f"; skipped {', '.join(skipped)}" if skipped else "")


def _when(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _result(status: ExchangeStatus) -> str:
    if status.running_since is not None:
        return "running"
    if status.last_succeeded is None:
        return "never fetched"
    return "ok" if status.last_succeeded else "failed"
