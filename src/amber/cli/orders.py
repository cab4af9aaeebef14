"""``amber order``: removal orders (EU 2021/784) and the steps on them: list, show,
confirm (the content was removed or disabled, and when), extend (keep the evidence
longer), notify (the content provider, Art. 11) and notify-authorities (a threat to
life, Art. 14(5)). Orders are registered by ``POST /v1/posts/{post_id}/removal-order``."""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

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
    from datetime import datetime

    from amber.engine import Engine
    from amber.orders import Order, Orders

order_app = typer.Typer(
    help="Removal orders (TCO Regulation 2021/784): list, show, confirm, extend, notify, "
    "notify-authorities.",
    no_args_is_help=True,
)

ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who acts (default: your user name)", show_default=False),
]


def _by(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


def _orders(engine: Engine) -> Orders:
    from amber.orders import Orders

    return Orders.of(engine)


def _show(order: Order, now: datetime) -> None:
    print(json.dumps(order.to_json(now), ensure_ascii=False))


@order_app.command("list")
def order_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only open, overdue, complied or late", show_default=False),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="Received at or after this ISO date or time", show_default=False
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Received before this ISO time; a date takes in its whole day",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Removal orders, oldest first, with the time left on the hour or the time taken."""
    from amber.review.queue import time_left
    from amber.statements import parse_moment

    check_format(format)
    since = None if start is None else parse_moment(start, "--from")
    until = None if end is None else parse_moment(end, "--to", end=True)
    with opened_engine(db, vault) as engine:
        found = _orders(engine).find(since=since, until=until, status=status)
        now = engine.clock()
    if format == "jsonl":
        print_jsonl(o.to_json(now) for o in found)
        return
    table = Table("id", "post", "authority", "reference", "received", "status", "time")
    for o in found:
        state = o.status(now)
        if o.time_to_act is not None:
            minutes = o.time_to_act.total_seconds() / 60
            when, style = f"acted in {minutes:.0f} min", "" if state.value == "complied" else "red"
        else:
            when, overdue = time_left(o.deadline, now)
            style = "bold red" if overdue else ""
        table.add_row(
            str(o.id),
            Text(o.post_id),
            Text(o.authority or "-"),
            Text(o.reference or "-"),
            o.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(state.value, style=style),
            Text(when, style=style),
        )
    out.print(table)
    err.print(f"{plural(len(found), 'order')}")


@order_app.command("show")
def order_show(order_id: str, db: DbOption = None, vault: VaultOption = None) -> None:
    """One order as JSON: the order, its status and time left, the removal confirmed,
    the evidence's retention and extensions, the notices sent."""
    with opened_engine(db, vault) as engine:
        order = _orders(engine).get(order_id)
        _show(order, engine.clock())


@order_app.command("confirm")
def order_confirm(
    order_id: str,
    removal: Annotated[
        str, typer.Option("--removal", help="removed, or disabled (access disabled)")
    ] = "removed",
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="When the platform acted, ISO time (default: now)", show_default=False
        ),
    ] = None,
    by: ByOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Record that the platform removed the content (or disabled access to it), and when;
    the evidence is kept six months from then at least, and the webhooks are told."""
    from amber.statements import parse_moment

    removed_at = None if at is None else parse_moment(at, "--at")
    with opened_engine(db, vault) as engine:
        order = _orders(engine).confirm(
            order_id, by=_by(by), removal=removal, removed_at=removed_at
        )
        _show(order, engine.clock())
    err.print(f"order {order.id}: {order.status(order.removed_at or order.received_at).value}")


@order_app.command("extend")
def order_extend(
    order_id: str,
    until: Annotated[
        str,
        typer.Option("--until", help="Keep the evidence until this ISO date", show_default=False),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Whose request (authority, court, reference)", show_default=False
        ),
    ],
    by: ByOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Keep the ordered content's evidence longer (Art. 6(2): on an authority's or a
    court's request). For an indefinite hold use 'amber evidence hold'."""
    from amber.statements import parse_moment

    moment = parse_moment(until, "--until", end=True)
    with opened_engine(db, vault) as engine:
        order = _orders(engine).extend(order_id, moment, reason=reason, by=_by(by))
        _show(order, engine.clock())


@order_app.command("notify")
def order_notify(
    order_id: str,
    author: Annotated[
        str | None,
        typer.Option(
            "--author",
            help="The content provider's name, to address the notice",
            show_default=False,
        ),
    ] = None,
    by: ByOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Record the notice to the content provider (Art. 11: the reasons and how to
    contest them) and send it by webhook; once, after the removal is confirmed."""
    with opened_engine(db, vault) as engine:
        order = _orders(engine).notify_provider(order_id, by=_by(by), author=author)
        _show(order, engine.clock())


@order_app.command("notify-authorities")
def order_notify_authorities(
    order_id: str,
    authority: Annotated[
        str, typer.Option("--authority", help="Who was informed", show_default=False)
    ],
    text: Annotated[str, typer.Option("--text", help="What they were told")] = "",
    by: ByOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Record that the authorities were informed of an imminent threat to life in the
    ordered post (Art. 14(5)); once per post."""
    with opened_engine(db, vault) as engine:
        order = _orders(engine).notify_authorities(
            order_id, authority=authority, by=_by(by), text=text
        )
        _show(order, engine.clock())
