"""``amber reports``: the reports users made of posts (``POST /v1/reports``), as kept with
each post's decision (``amber.reports``). ``amber report`` is the transparency report."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.decisions import _moment
from amber.cli.options import (
    DbOption,
    FormatOption,
    VaultOption,
    check_format,
    opened_engine,
    out,
    print_jsonl,
)

reports_app = typer.Typer(
    help="User reports of posts: list them (by when they arrived), show one.",
    no_args_is_help=True,
)


@reports_app.command("list")
def reports_list(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Received at or after this ISO time (UTC if no zone)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Received before this ISO time (UTC if no zone)")
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="Only this category")] = None,
    post: Annotated[str | None, typer.Option("--post", help="Only this post's reports")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many", min=1)] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List user reports, the newest first, with where their post stands."""
    from amber.reports import ReportStore

    check_format(format)
    since_at, until_at = _moment(since, "--since"), _moment(until, "--until")
    with opened_engine(db, vault) as engine:
        found = ReportStore(engine.db).find(
            since=since_at, until=until_at, category=category, post_id=post, limit=limit
        )
    if format == "jsonl":
        print_jsonl(r.to_json() for r in found)
        return
    from amber.render import verdict_text

    table = Table("report", "received", "category", "post", "verdict", "review", "reporter", "text")
    for r in found:
        table.add_row(
            r.report.id[:12],
            r.report.received_at.strftime("%Y-%m-%d %H:%M"),
            r.report.category,
            Text(r.post_id),
            verdict_text(r.verdict),
            r.review_state,
            Text(r.report.reporter or "-"),
            Text(r.report.text if len(r.report.text) <= 60 else r.report.text[:59] + "…"),
        )
    out.print(table)


@reports_app.command("show")
def reports_show(
    report_id: Annotated[str, typer.Argument(help="The report's id, as 'list' shows it")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Show one report and where its post stands."""
    from amber.reports import ReportStore

    check_format(format, ("table", "json"))
    with opened_engine(db, vault) as engine:
        found = ReportStore(engine.db).get(report_id)
    record = found.to_json()
    if format == "json":
        print(json.dumps(record, ensure_ascii=False))
        return
    table = Table("field", "value", show_header=False)
    for key, value in record.items():
        table.add_row(key, Text("-" if value is None else str(value)))
    out.print(table)


__all__ = ["reports_app"]
