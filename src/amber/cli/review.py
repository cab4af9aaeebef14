"""``amber review``: a post's review history and what changes an outcome afterwards:
reopen it with a reason, revert the bank entries a confirmation added, and the
escalation queue (own an escalated item). The queue itself is the console's and
``/v1/review``'s."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.appeals import ReviewerOption
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

if TYPE_CHECKING:
    from amber.review.history import Review

review_app = typer.Typer(
    help="Review history and follow-up: history, reopen, unbank (revert bank entries a "
    "confirmation added), escalations, own.",
    no_args_is_help=True,
)

ReasonOption = Annotated[str, typer.Option("--reason", help="Why", show_default=False)]


@review_app.command("history")
def review_history(
    post_id: str,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Every step of a post's review, oldest first (outcomes, reopens, ownership, bank
    entries reverted), never overwritten; where it stands, the bank entries its reviews
    added, and its appeals."""
    check_format(format, ("table", "json"))
    with opened_engine(db, vault) as engine:
        item = engine.review.item(post_id)
        steps = engine.history.steps(post_id)
        banked = engine.history.banked(post_id)
        owner = engine.review.owner(post_id, client=item.client)
        appeals = engine.appeals.find(post_id=post_id, clients=[item.client], limit=1000)
    if format == "json":
        record = {
            "post_id": post_id,
            "client": item.client,
            "state": item.state,
            "owner": owner,
            "history": [s.to_json() for s in steps],
            "banked": [{"entry": e, "bank": b} for e, b in sorted(banked.items())],
            "appeals": [a.to_json() for a in appeals],
        }
        print(json.dumps(record, ensure_ascii=False))
        return
    out.print(
        Text(
            f"post {post_id} ({item.client}): review {item.state}"
            + (f", owned by {owner}" if owner else "")
        )
    )
    out.print(_steps(steps))
    if banked:
        out.print(
            Text(
                "still in banks: "
                + ", ".join(f"entry {e} of {b}" for e, b in sorted(banked.items()))
            )
        )
    for a in appeals:
        out.print(
            Text(
                f"appeal {a.id}: {a.status.value}"
                + ("" if a.reviewer is None else f" by {a.reviewer}")
                + f", filed {a.filed_at.isoformat()}"
            )
        )


def _steps(steps: list[Review]) -> Table:
    table = Table("id", "at", "step", "reviewer", "detail", "reason")
    for s in steps:
        detail = []
        if s.action is not None:
            detail.append(s.action.value)
        if s.bank is not None:
            detail.append(f"bank {s.bank}")
        if s.entries:
            detail.append("entries " + ",".join(map(str, s.entries)))
        if s.refers_to is not None:
            detail.append(f"of {s.refers_to}")
        table.add_row(
            str(s.id),
            s.decided_at.strftime("%Y-%m-%d %H:%M:%S"),
            s.outcome.value,
            Text(s.reviewer),
            Text(" ".join(detail)),
            Text(s.reason),
        )
    return table


@review_app.command("reopen")
def review_reopen(
    post_id: str,
    reviewer: ReviewerOption,
    reason: ReasonOption,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Take a confirmed or rejected item back to the review queue to change its outcome;
    the outcome stays in the history, the next one is a new step. Refused (exit 2) for an
    item in another state or with an open appeal."""
    with opened_engine(db, vault) as engine:
        step = engine.history.reopen(post_id, reviewer, reason=reason)
    print(step.id)
    err.print(f"post {post_id!r} is back in the review queue (outcome {step.refers_to} reopened)")


@review_app.command("unbank")
def review_unbank(
    post_id: str,
    reviewer: ReviewerOption,
    reason: ReasonOption,
    entries: Annotated[
        list[int] | None,
        typer.Option("--entry", help="Only this entry (repeat for more); default every one left"),
    ] = None,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Revert a wrong "add to bank": delete the bank entries reviews of the post added,
    one by one through the bank's entry control (the bank's audit names
    reviewer:<name>). The post's outcome is unchanged: reopen it for that."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        steps = engine.history.unbank(post_id, reviewer, reason=reason, entries=entries)
    if format == "jsonl":
        print_jsonl(s.to_json() for s in steps)
    for s in steps:
        if format == "table":
            for entry in s.entries:
                print(f"{s.bank}\t{entry}")
        err.print(f"{plural(len(s.entries), 'entry', 'entries')} of bank {s.bank!r} reverted")


@review_app.command("escalations")
def review_escalations(
    unowned: Annotated[bool, typer.Option("--unowned", help="Only those nobody owns yet")] = False,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """The escalation queue: escalated items stay here until someone owns them (unowned
    first, most urgent first), then with their owner until decided."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.escalations.items(owned=False if unowned else None)
        now = engine.clock()
    if format == "jsonl":
        print_jsonl(e.to_json() for e in found)
        return
    from amber.review.queue import time_left

    table = Table("post", "verdict", "time left", "escalated by", "when", "reason", "owner")
    for e in found:
        left, overdue = time_left(e.item.deadline, now)
        table.add_row(
            Text(e.item.post_id),
            e.item.verdict,
            Text(left, style="bold red" if overdue else ""),
            Text("" if e.escalated is None else e.escalated.reviewer),
            "" if e.escalated is None else e.escalated.decided_at.strftime("%Y-%m-%d %H:%M"),
            Text("" if e.escalated is None else e.escalated.reason),
            Text("—" if e.owner is None else e.owner.reviewer),
        )
    out.print(table)


@review_app.command("own")
def review_own(
    post_id: str,
    reviewer: ReviewerOption,
    reason: Annotated[str, typer.Option("--reason", help="A note (optional)")] = "",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Take an escalated item on: from then on only you decide it (in the console or
    POST /v1/review/{post_id}/decision, no lock needed). Refused (exit 2) when another
    reviewer owns it."""
    with opened_engine(db, vault) as engine:
        step = engine.escalations.own(post_id, reviewer, reason=reason)
    print(step.id)
    err.print(f"post {post_id!r} is owned by {step.reviewer}")
