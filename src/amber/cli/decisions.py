"""``amber decisions``: look up what amber decided: list with filters, show one."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from amber.cli.options import (
    DbOption,
    FormatOption,
    VaultOption,
    check_format,
    opened_engine,
    out,
    print_jsonl,
)
from amber.errors import UserError

decisions_app = typer.Typer(
    help="Stored decisions: list them with filters, show one in full.", no_args_is_help=True
)


def _moment(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from ``text``; a date or a time without a zone is taken as UTC.
    Raises ``UserError`` naming ``option`` for anything else."""
    if text is None:
        return None
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not an ISO 8601 date or time; e.g. 2026-12-06 or "
            "2026-12-06T13:05:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@decisions_app.command("list")
def decisions_list(
    verdict: Annotated[
        str | None,
        typer.Option("--verdict", help="Only this verdict: allow, review, restrict or remove"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Scanned at or after this ISO time (UTC if no zone)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Scanned before this ISO time (UTC if no zone)")
    ] = None,
    author: Annotated[str | None, typer.Option("--author", help="Only this author's posts")] = None,
    bank: Annotated[
        str | None, typer.Option("--bank", help="Only decisions with a reason naming this bank")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many", min=1)] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List stored decisions, the most recently scanned first."""
    check_format(format)
    since_at, until_at = _moment(since, "--since"), _moment(until, "--until")
    with opened_engine(db, vault) as engine:
        found = engine.decisions.find(
            verdict=verdict,
            since=since_at,
            until=until_at,
            author=author,
            bank=bank,
            limit=limit,
        )
    if format == "jsonl":
        print_jsonl(decision.to_record() for decision in found)
        return
    from amber.render import render_decisions

    out.print(render_decisions(found))


@decisions_app.command("show")
def decisions_show(
    post_id: str,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Show one post's stored decision in full."""
    check_format(format, ("table", "json"))
    with opened_engine(db, vault) as engine:
        decision = engine.decisions.get(post_id)
    if format == "json":
        print(json.dumps(decision.to_record(), ensure_ascii=False))
        return
    from amber.render import render_decision

    out.print(render_decision(decision))
