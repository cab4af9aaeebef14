"""``amber webhook``: tell the platform of every decision and later change: add, list and
remove webhooks; list deliveries, retry failed ones, and send the outbox (``deliver``)."""

from __future__ import annotations

import threading
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
    plural,
    print_jsonl,
)
from amber.errors import UserError

if TYPE_CHECKING:
    from amber.webhook_delivery import DeliveryReport

webhook_app = typer.Typer(
    help="Webhooks: every decision, review outcome and removal order POSTed, signed, to "
    "the platform: add, list, remove, deliveries, retry, deliver.",
    no_args_is_help=True,
)


@webhook_app.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="Where deliveries are POSTed: http(s)://HOST/PATH")],
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="AMBER_WEBHOOK_SECRET",
            help="Signs each delivery (X-Amber-Signature), at least 16 characters; stored in "
            "the database as given (env AMBER_WEBHOOK_SECRET)",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        str,
        typer.Option("--events", help="Comma list of the events it takes"),
    ] = "decision,review,appeal,order",
    client: Annotated[
        str | None,
        typer.Option(
            "--client",
            help="Only this client's posts (an API token's name; _local for scans); "
            "default every client's",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Add a webhook: from now on every event it takes is put in the outbox for it, and
    sent by amber serve or amber webhook deliver. Creates the database if needed."""
    check_format(format)
    with opened_engine(db, vault, create=True) as engine:
        added = engine.webhooks.add(url, secret=secret, events=events, client=client, actor=actor())
    if format == "jsonl":
        print_jsonl([added.to_json()])
    else:
        print(added.id)
    err.print(
        f"webhook {added.id} for {added.url} takes {', '.join(e.value for e in added.events)}"
        + (f" of client {added.client!r}" if added.client else "")
    )


@webhook_app.command("list")
def webhook_list(
    format: FormatOption = "table", db: DbOption = None, vault: VaultOption = None
) -> None:
    """List webhooks with their deliveries: pending, failed, delivered (never secrets)."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.webhooks.all()
    if format == "jsonl":
        print_jsonl(w.to_json() for w in found)
        return
    table = Table("id", "url", "events", "client", "pending", "failed", "delivered")
    for w in found:
        table.add_row(
            str(w.id),
            Text(w.url),
            ",".join(e.value for e in w.events),
            Text(w.client or "every"),
            str(w.pending),
            str(w.failed),
            str(w.delivered),
        )
    out.print(table)


@webhook_app.command("remove")
def webhook_remove(
    webhook_id: Annotated[int, typer.Argument(metavar="ID", help="The webhook's id")],
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Remove a webhook; its deliveries go with it (pending ones are never sent)."""
    with opened_engine(db, vault) as engine:
        gone = engine.webhooks.remove(webhook_id)
    dropped = f"; {plural(gone.pending, 'pending delivery', 'pending deliveries')} dropped"
    err.print(f"webhook {gone.id} ({gone.url}) removed" + (dropped if gone.pending else ""))


@webhook_app.command("deliveries")
def webhook_deliveries(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only pending, delivered or failed (given up) ones"),
    ] = None,
    webhook: Annotated[
        int | None, typer.Option("--webhook", help="Only this webhook's (its id)")
    ] = None,
    post_id: Annotated[
        str | None, typer.Option("--post", help="Only those about this post")
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event's")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many", min=1)] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List deliveries, the newest first: state, attempts, the last answer or error (jsonl:
    with the payload sent)."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.webhooks.deliveries(
            state=status, webhook_id=webhook, post_id=post_id, event=event, limit=limit
        )
    if format == "jsonl":
        print_jsonl(d.to_json() for d in found)
        return
    table = Table("delivery", "webhook", "event", "post", "state", "attempts", "when", "last")
    for d in found:
        if d.state.value == "pending":
            when = "next " + d.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
        elif d.delivered_at is not None:
            when = d.delivered_at.strftime("%Y-%m-%d %H:%M:%S")
        else:
            when = "-"
        last = "-"
        if d.last_error:
            last = d.last_error
        elif d.last_status is not None:
            last = f"HTTP {d.last_status}"
        table.add_row(
            d.delivery,
            str(d.webhook_id),
            d.event.value,
            Text(d.post_id or "-"),
            d.state.value,
            str(d.attempts),
            when,
            Text(last),
        )
    out.print(table)


@webhook_app.command("retry")
def webhook_retry(
    deliveries: Annotated[
        list[str] | None,
        typer.Argument(metavar="[DELIVERY]...", help="Failed deliveries' ids", show_default=False),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed delivery (of --webhook, if given)")
    ] = False,
    webhook: Annotated[
        int | None, typer.Option("--webhook", help="With --failed: only this webhook's")
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Send failed (given up) deliveries again, as new: the same id and body, attempts
    counted from zero. amber serve or amber webhook deliver sends them."""
    if bool(deliveries) == failed:
        raise UserError("name failed deliveries to retry, or give --failed for all of them")
    if webhook is not None and not failed:
        raise UserError("--webhook goes with --failed")
    with opened_engine(db, vault) as engine:
        if failed:
            count = engine.webhooks.retry_failed(webhook_id=webhook)
        else:
            count = len([engine.webhooks.retry(d) for d in deliveries or []])
    err.print(f"{plural(count, 'delivery', 'deliveries')} pending again")


@webhook_app.command("deliver")
def webhook_deliver(
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Keep sending, pass after pass, until interrupted"),
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", help="With --watch: seconds between passes", min=0.05),
    ] = 1.0,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Send the outbox: every delivery due now (failed attempts are retried in a later
    pass, after their backoff); with --watch, keep at it. Exits 1 when an attempt failed.
    Any number of these and of amber serve may run on one database."""
    from amber.webhook_delivery import next_due

    with opened_engine(db, vault) as engine:
        deliverer = engine.deliverer()
        if not watch:
            report = deliverer.run_once()
            _print_report(report)
            waiting = next_due(engine.db)
            if waiting is not None:
                err.print(f"deliveries are waiting; the next is due at {waiting.isoformat()}")
            if report.retrying or report.failed:
                raise typer.Exit(1)
            return
        stop = threading.Event()
        err.print(f"sending webhook deliveries every {interval:g} s; Ctrl-C stops")
        try:
            deliverer.run(
                stop,
                every=interval,
                on_report=_print_report,
                on_error=lambda exc: err.print(f"Error: delivery pass failed: {exc}"),
            )
        except KeyboardInterrupt:
            stop.set()


def _print_report(report: DeliveryReport) -> None:
    for delivery, when, why in report.retrying:
        err.print(f"delivery {delivery} failed ({why}); next attempt at {when.isoformat()}")
    for delivery, why in report.failed:
        err.print(
            f"delivery {delivery} failed for good ({why}); 'amber webhook retry {delivery}' "
            "sends it again"
        )
    err.print(
        f"{plural(len(report.delivered), 'delivery', 'deliveries')} delivered, "
        f"{len(report.retrying)} to retry, {len(report.failed)} failed"
    )
