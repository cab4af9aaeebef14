"""``amber account``: the authors of decided posts: their record (strikes, what it
recommends) and history (``amber.accounts``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import (
    DbOption,
    FormatOption,
    PolicyOption,
    VaultOption,
    check_format,
    opened_engine,
    out,
    print_jsonl,
)

if TYPE_CHECKING:
    from amber.accounts import Account, AccountSummary

account_app = typer.Typer(
    help="Accounts: each author's decided posts, strikes and the account action they "
    "recommend: show one, list those with strikes.",
    no_args_is_help=True,
)

ClientOption = Annotated[
    str | None,
    typer.Option(
        "--client",
        help="Whose author: an API token's name, or _local for scans (needed when several "
        "clients have an author of that name)",
        show_default=False,
    ),
]


@account_app.command("show")
def account_show(
    author: Annotated[str, typer.Argument(help="The posts' author, as the posts give it")],
    client: ClientOption = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many decisions", min=1)] = 100,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Show an account: its strikes now, the account action they recommend, its posts by
    verdict and its decisions, newest first (with where to read each)."""
    check_format(format, ("table", "json"))
    with opened_engine(db, vault, policy) as engine:
        account = engine.accounts.show(author, client=client, limit=limit)
    if format == "json":
        print(json.dumps(account.to_json(), ensure_ascii=False))
        return
    out.print(_render_account(account))


@account_app.command("list")
def account_list(
    limit: Annotated[int, typer.Option("--limit", help="At most this many", min=1)] = 100,
    format: FormatOption = "table",
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List the accounts with strikes or a threat to life in the policy's window, the most
    strikes first."""
    check_format(format)
    with opened_engine(db, vault, policy) as engine:
        found = engine.accounts.with_strikes(limit=limit)
    if format == "jsonl":
        print_jsonl(a.to_json() for a in found)
        return
    table = Table("author", "client", "strikes", "strike posts", "threats", "recommends", "last")
    for a in found:
        table.add_row(*_summary_cells(a))
    out.print(table)


def _summary_cells(a: AccountSummary) -> list[Text | str]:
    return [
        Text(a.author),
        Text(a.client),
        f"{a.strikes:.2f}",
        str(a.posts),
        str(a.threats),
        Text(a.recommendation or "-", style="bold red" if a.recommendation else ""),
        "-" if a.last_decided_at is None else a.last_decided_at.strftime("%Y-%m-%d %H:%M"),
    ]


def _render_account(account: Account) -> Table:
    from amber.render import verdict_text

    s = account.summary
    head = Table("field", "value", show_header=False)
    head.add_row("author", Text(s.author))
    head.add_row("client", Text(s.client))
    head.add_row(
        "strikes", f"{s.strikes:.2f} from {s.posts} posts in {account.policy.window_days:g} days"
    )
    head.add_row("threats to life", str(s.threats))
    head.add_row("recommends", Text(s.recommendation or "-"))
    head.add_row("posts", ", ".join(f"{n} {v}" for v, n in account.verdicts.items() if n) or "-")
    history = Table(
        "post", "verdict", "review", "actions", "strike", "found by", "reports", "decided"
    )
    for d in account.history:
        history.add_row(
            Text(d.post_id),
            verdict_text(d.verdict),
            d.review_state,
            Text(", ".join(d.actions) or "-"),
            f"{d.strike:.2f}" if d.strike else "-",
            d.found_by or "-",
            str(d.reports) if d.reports else "-",
            d.first_scanned_at.strftime("%Y-%m-%d %H:%M"),
        )
    outer = Table.grid()
    outer.add_row(head)
    outer.add_row(history)
    return outer


__all__ = ["account_app"]
