"""``amber retrohunt``: decide again the past posts that match bank entries (new ones, by
``--since``), from their stored signals (``amber.retrohunt``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.decisions import _moment
from amber.cli.options import (
    DbOption,
    PolicyOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    print_jsonl,
)

if TYPE_CHECKING:
    from amber.engine import Engine
    from amber.retrohunt import HuntReport


def retrohunt(
    bank: Annotated[
        str | None, typer.Option("--bank", help="Only this bank's entries (default: every bank)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only entries added at or after this ISO date or time (UTC if no zone); "
            "default every entry",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Decide again at most this many posts, newest first", min=1),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, jsonl or json")] = "table",
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Decide again the posts of the retention window (AMBER_RETENTION_DAYS) whose stored
    hashes match bank entries, through the normal path (evidence, webhooks, statements),
    each new reason marked found_by retro-hunt.

    amber runs one by itself after every bank write that adds entries (at most 200 posts
    each); this runs one by hand: after 'amber bank import --no-retrohunt', or for the
    posts a hunt left over its limit."""
    check_format(format, ("table", "jsonl", "json"))
    moment = _moment(since, "--since")
    with opened_engine(db, vault, policy) as engine:
        report = engine.retrohunt(bank=bank, since=moment, limit=limit)
    if format == "json":
        print(json.dumps(report.to_json(), ensure_ascii=False))
    elif format == "jsonl":
        print_jsonl(h.to_json() for h in report.decided)
    elif report.decided:
        out.print(render_hunted(report))
    for post_id, client, why in report.failed:
        err.print(f"Error: post {post_id!r} of client {client!r}: {why}")
    from amber.retrohunt import summary

    err.print(summary(report))
    if report.failed:
        raise typer.Exit(1)


def render_hunted(report: HuntReport) -> Table:
    """The posts a hunt decided again, as a table."""
    from amber.render import verdict_text

    table = Table("post", "client", "was", "now", "actions", "banks", "entries")
    for h in report.decided:
        table.add_row(
            Text(h.post_id),
            Text(h.client),
            verdict_text(h.before),
            verdict_text(h.after),
            Text(", ".join(h.actions) or "-"),
            Text(", ".join(h.banks)),
            ", ".join(map(str, h.entries)),
        )
    return table


def tell_hunts(engine: Engine, before: int) -> None:
    """On stderr, what the hunts a bank command set off did (``engine.hunts`` past
    ``before`` of them)."""
    from amber.retrohunt import summary

    for report in list(engine.hunts)[before:]:
        if report.candidates or report.failed:
            err.print(summary(report))
        for h in report.decided:
            err.print(f"  {h.post_id} ({h.client}): {h.before} -> {h.after}, found by retro-hunt")


__all__ = ["retrohunt", "tell_hunts"]
