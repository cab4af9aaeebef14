"""``amber appeal``: users' appeals against restrictions (EU DSA Art. 20): file one (the
platform does it through ``POST /v1/appeals``), list them with their target dates, show
one, and decide it as a reviewer who did not decide the post."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

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
    print_jsonl,
)

if TYPE_CHECKING:
    from datetime import datetime

    from amber.review.appeals import Appeal

appeal_app = typer.Typer(
    help="Appeals (DSA Art. 20) against restrictions: file, list (with target dates), show, "
    "decide (uphold or reverse).",
    no_args_is_help=True,
)

ReviewerOption = Annotated[
    str,
    typer.Option(
        "--reviewer",
        help="Who decides: the name you review under (your token's name in the console "
        "and the API)",
        show_default=False,
    ),
]


@appeal_app.command("file")
def appeal_file(
    post_id: Annotated[str, typer.Argument(help="The restricted post")],
    text: Annotated[
        str,
        typer.Option(
            "--text", help="The user's words: why the decision was wrong", show_default=False
        ),
    ],
    client: Annotated[
        str | None,
        typer.Option("--client", help="Whose post, when several clients hold the post id"),
    ] = None,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """File a user's appeal against the restriction of their post (the platform files
    them with POST /v1/appeals). Refused (exit 2, naming the rule) for a post that is not
    restricted, a decision more than six months old, or a post with an open appeal."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        filed = engine.appeals.file(post_id, text, filed_by=actor(), client=client)
    if format == "jsonl":
        print_jsonl([filed.to_json()])
    else:
        print(filed.id)
    err.print(
        f"appeal {filed.id} against the restriction of post {filed.post_id!r} filed; "
        f"answer due by {filed.due_at.isoformat()}"
    )


@appeal_app.command("list")
def appeal_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only those open, upheld or reversed", show_default=False),
    ] = None,
    post_id: Annotated[
        str | None, typer.Option("--post", help="Only this post's", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many", min=1)] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List appeals: open ones first, the nearest target date first, with the time left;
    then the decided ones, the latest first."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.appeals.find(status=status, post_id=post_id, limit=limit)
        now = engine.clock()
    if format == "jsonl":
        print_jsonl(a.to_json() for a in found)
        return
    out.print(_table(found, now))


def _table(found: list[Appeal], now: datetime) -> Table:
    from amber.review.queue import time_left

    table = Table("id", "post", "client", "status", "filed", "due", "time left", "reviewer")
    for a in found:
        left, overdue = time_left(a.due_at, now) if a.status == "open" else ("—", False)
        table.add_row(
            str(a.id),
            Text(a.post_id),
            Text(a.client),
            a.status.value + ("" if a.action is None else f" ({a.action})"),
            a.filed_at.strftime("%Y-%m-%d %H:%M"),
            a.due_at.strftime("%Y-%m-%d %H:%M"),
            Text(left, style="bold red" if overdue else ""),
            Text(a.reviewer or ""),
        )
    return table


@appeal_app.command("show")
def appeal_show(
    appeal_id: Annotated[int, typer.Argument(metavar="ID", help="The appeal's id")],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Show one appeal: what it appeals, the user's text, its target date and outcome,
    and which reviewers may not decide it (they decided the post)."""
    check_format(format, ("table", "json"))
    with opened_engine(db, vault) as engine:
        found = engine.appeals.get(appeal_id)
        barred = engine.appeals.deciders(found)
        now = engine.clock()
    if format == "json":
        print(json.dumps({**found.to_json(), "barred": barred}, ensure_ascii=False))
        return
    from amber.review.queue import time_left

    record = found.to_json()
    left = time_left(found.due_at, now)[0] if found.status == "open" else "decided"
    table = Table("field", "value", show_header=False)
    for name in ("id", "post_id", "client", "version", "statement", "decision_at"):
        table.add_row(name, Text(str(record[name])))
    table.add_row("appealable_until", record["appealable_until"])
    table.add_row("filed", Text(f"{record['filed_at']} by {record['filed_by']}"))
    table.add_row("due", f"{record['due_at']} ({left})")
    table.add_row("text", Text(found.text))
    table.add_row("status", found.status.value)
    if found.decided_at is not None:
        table.add_row("outcome", Text(f"{record['outcome']} by {found.reviewer}"))
        table.add_row("action", found.action or "none")
        table.add_row("reason", Text(found.reason or ""))
        table.add_row("decided_at", found.decided_at.isoformat())
    table.add_row("may not decide", Text(", ".join(barred) or "—"))
    out.print(table)


@appeal_app.command("decide")
def appeal_decide(
    appeal_id: Annotated[int, typer.Argument(metavar="ID", help="The appeal's id")],
    outcome: Annotated[
        str,
        typer.Argument(
            metavar="OUTCOME",
            help="uphold (the restriction stands) or reverse (the post is restored)",
        ),
    ],
    reviewer: ReviewerOption,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; the user is told", show_default=False)
    ],
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Decide an open appeal as a reviewer who did not decide the post (exit 2 naming the
    rule otherwise). A reversal restores the post: the decision's review state becomes
    'reversed', its statement of reasons ends, and the webhooks are told (event appeal)."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        done = engine.appeals.decide(appeal_id, reviewer, outcome, reason=reason)
    if format == "jsonl":
        print_jsonl([done.to_json()])
    else:
        print(done.status.value)
    restored = f"; post {done.post_id!r} restored" if done.action == "restore" else ""
    err.print(f"appeal {done.id} {done.status.value} by {done.reviewer}{restored}")
