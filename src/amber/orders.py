"""Removal orders (EU Regulation 2021/784 on terrorist content online, "TCO"): the order
record and what the platform does on one, each step a custody event of the post's
evidence.

``POST /v1/posts/{post_id}/removal-order`` (``amber.evidence.acts.Acts.removal_order``)
registers an order: the post goes to the top of the review queue with a one-hour
deadline (Art. 3(3)) and the order (issuing authority, reference, legal basis, when it
was received, who relayed it) becomes a ``removal_order`` custody event of the vault item
of the version ordered. That event *is* the order record: an order is known by its
record's number in the custody log (``Order.id``), tamper-evident and signed like every
other custody event, and never changed; each later step is one more event naming it:

- ``order_complied``: the platform removed the content or disabled access to it, and
  when (Art. 3(3), 3(6)); the evidence is then kept at least six months from that time
  (Art. 6(1): a ``retention_extended`` event when the scan's retention ends sooner);
- ``retention_extended``: kept longer on a competent authority's or court's request
  (Art. 6(2));
- ``provider_notified``: the notice to the content provider (Art. 11), its text with the
  reasons and how to contest them, delivered by webhook for the platform to pass on;
- ``authorities_notified``: the post involves an imminent threat to life and the
  authorities were told (Art. 14(5)); once per post.

Each step also reaches the webhooks as an ``order`` event (``order.step`` says which), in
the transaction that records it. ``Orders`` reads the log afresh on every call: there is
no second copy to drift from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.decisions import event_payload
from amber.errors import ConflictError, NotFoundError, UserError
from amber.evidence.log import Entry
from amber.evidence.vault import DEFAULT_RETENTION, Item, Vault, _now_text
from amber.identity import DEFAULT_CLIENT, item_key
from amber.store.tables import decisions
from amber.webhooks import Event, emit

if TYPE_CHECKING:
    from amber.engine import Engine

#: How long the platform has to act on an order (Art. 3(3)).
ORDER_HOURS = timedelta(hours=1)
#: How long removed content and its data are kept at least after the removal (Art. 6(1)).
PRESERVATION = DEFAULT_RETENTION
#: The legal basis named when the order names none.
DEFAULT_BASIS = "Regulation (EU) 2021/784, Article 3"


class Removal(StrEnum):
    """How the platform complied with an order."""

    removed = "removed"
    disabled = "disabled"  # access disabled in every Member State


class OrderStatus(StrEnum):
    """Where an order stands at a given time."""

    open = "open"  # within its hour, not complied with yet
    overdue = "overdue"  # its hour is over and no removal was confirmed
    complied = "complied"  # removed or disabled within the hour
    late = "late"  # removed or disabled, after the hour


@dataclass(frozen=True, slots=True)
class Order:
    """One removal order and the steps taken on it, as the custody log records them."""

    #: The number of its ``removal_order`` record in the custody log (from 1).
    id: int
    post_id: str
    client: str
    version: int
    #: The vault item it is about (``amber.identity.item_key``).
    key: str
    reference: str | None
    authority: str | None
    legal_basis: str | None
    sent_by: str | None
    received_at: datetime
    deadline: datetime
    removed_at: datetime | None = None
    removal: Removal | None = None
    confirmed_by: str | None = None
    #: How long the item's evidence is kept, and its legal hold, if any.
    retain_until: datetime | None = None
    hold: str | None = None
    #: Each ``retention_extended`` record of the item: until, reason, by, at.
    extensions: tuple[dict[str, Any], ...] = ()
    #: The content provider's notice (Art. 11) once sent: when, by whom, and its text.
    provider_notice: dict[str, Any] | None = None
    #: The threat-to-life notice (Art. 14(5)) of the post, whichever order it came by.
    authorities_notice: dict[str, Any] | None = None
    steps: tuple[str, ...] = field(default=())

    def status(self, now: datetime) -> OrderStatus:
        """Where the order stands at ``now``."""
        if self.removed_at is not None:
            return OrderStatus.complied if self.removed_at <= self.deadline else OrderStatus.late
        return OrderStatus.overdue if now > self.deadline else OrderStatus.open

    @property
    def time_to_act(self) -> timedelta | None:
        """From receipt to the removal confirmed (``None`` until then)."""
        return None if self.removed_at is None else self.removed_at - self.received_at

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The order as the CLI (``amber order show --format json``) and the API write it;
        ``seconds_left`` is negative once overdue, ``None`` once complied with."""
        acted = self.time_to_act
        return {
            "id": self.id,
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "key": self.key,
            "reference": self.reference,
            "authority": self.authority,
            "legal_basis": self.legal_basis,
            "sent_by": self.sent_by,
            "received_at": self.received_at.isoformat(),
            "deadline": self.deadline.isoformat(),
            "status": self.status(now).value,
            "seconds_left": (
                None if self.removed_at is not None else (self.deadline - now).total_seconds()
            ),
            "removed_at": _iso(self.removed_at),
            "removal": None if self.removal is None else self.removal.value,
            "confirmed_by": self.confirmed_by,
            "seconds_to_act": None if acted is None else acted.total_seconds(),
            "retain_until": _iso(self.retain_until),
            "hold": self.hold,
            "extensions": [dict(e) for e in self.extensions],
            "provider_notice": self.provider_notice,
            "authorities_notice": self.authorities_notice,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def read_orders(entries: Sequence[Entry], items: dict[str, Item]) -> list[Order]:
    """Every order in the custody log ``entries``, oldest first, with the steps taken on
    it and its item's retention (``items``: the vault's items by key). Pure."""
    orders: dict[int, Order] = {}
    by_key: dict[str, list[int]] = {}
    extensions: dict[str, list[dict[str, Any]]] = {}
    warned: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        record = entry.record
        event = record.get("event")
        post_id = record.get("post_id")
        if not isinstance(post_id, str):
            continue
        client = str(record.get("client", DEFAULT_CLIENT))
        version = int(record.get("version", 1))
        key = item_key(post_id, client, version)
        if event == "removal_order":
            number = entry.index + 1
            orders[number] = Order(
                id=number,
                post_id=post_id,
                client=client,
                version=version,
                key=key,
                reference=_optional(record.get("reference")),
                authority=_optional(record.get("authority")),
                legal_basis=_optional(record.get("legal_basis")),
                sent_by=_optional(record.get("sent_by")),
                received_at=_time(record.get("received_at") or record["time"]),
                deadline=_time(record["deadline"]),
            )
            by_key.setdefault(key, []).append(number)
        elif event == "retention_extended":
            extensions.setdefault(key, []).append(
                {
                    "until": record.get("retain_until"),
                    "reason": record.get("reason"),
                    "by": record.get("actor"),
                    "at": record.get("time"),
                }
            )
        elif event == "authorities_notified":
            warned.setdefault((client, post_id), _notice_of(record))
        elif event in ("order_complied", "provider_notified"):
            named = record.get("order")
            if not isinstance(named, int) or named not in orders:
                continue
            order = orders[named]
            if event == "order_complied":
                orders[named] = replace(
                    order,
                    removed_at=_time(record["removed_at"]),
                    removal=Removal(str(record.get("removal", "removed"))),
                    confirmed_by=_optional(record.get("actor")),
                )
            else:
                orders[named] = replace(order, provider_notice=_notice_of(record))
    out = []
    for order in orders.values():
        item = items.get(order.key)
        out.append(
            replace(
                order,
                retain_until=None if item is None or item.deleted else item.retain_until,
                hold=None if item is None else item.hold,
                extensions=tuple(extensions.get(order.key, ())),
                authorities_notice=warned.get((order.client, order.post_id)),
            )
        )
    return out


def _notice_of(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": record.get("time"),
        "by": record.get("actor"),
        **{k: record[k] for k in ("authority", "text", "order") if k in record},
    }


def provider_notice(order: Order, *, author: str | None = None) -> str:
    """The notice to the content provider (Art. 11(1)-(2)): what was removed or disabled,
    when, on whose order and on what legal basis, and how to contest it. Pure."""
    if order.removed_at is None or order.removal is None:
        raise ConflictError(
            f"order {order.id} has no removal confirmed yet; confirm it first "
            f"('amber order confirm {order.id}'), then notify the content provider"
        )
    done = "removed" if order.removal is Removal.removed else "disabled access to"
    who = order.authority or "a competent authority of an EU Member State"
    reference = f" (reference {order.reference})" if order.reference else ""
    day = order.removed_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{'Dear ' + author + ', w' if author else 'W'}e {done} your content "
        f"(post {order.post_id}) on {day} because {who} issued a removal order{reference} "
        f"under {order.legal_basis or DEFAULT_BASIS}, finding that it is terrorist content "
        "within the meaning of Regulation (EU) 2021/784. The order is the reason for this "
        "removal; it was not a decision of ours on the merits.\n\n"
        "How to contest it: you may file a complaint with us, asking for the content to be "
        "reinstated (Article 10 of Regulation (EU) 2021/784); we will answer within two "
        "weeks. You also have the right to challenge the removal order itself before the "
        "courts of the Member State whose authority issued it (Article 9). On request we "
        "will give you a copy of the removal order (Article 11(2)). The content is "
        "preserved for six months from its removal, so that it can be reinstated if the "
        "order is overturned (Article 6)."
    )


class Orders:
    """The removal orders of one vault, and the steps on them, with webhooks on one
    database."""

    def __init__(
        self,
        *,
        db: sa.Engine,
        vault: Callable[[], Vault],
        clock: Callable[[], datetime],
        preservation: timedelta = PRESERVATION,
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.preservation = preservation

    @classmethod
    def of(cls, engine: Engine) -> Orders:
        """The orders of ``engine``'s vault, with its database and clock."""
        return cls(db=engine.db, vault=engine.open_vault, clock=engine.clock)

    def find(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: OrderStatus | str | None = None,
        post_id: str | None = None,
        clients: Sequence[str] | None = None,
    ) -> list[Order]:
        """Orders received at or after ``since`` and before ``until``, standing at
        ``status`` now, of ``post_id``, of ``clients``' posts; oldest first. Raises
        ``UserError`` for a bad status or a time without a zone."""
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise UserError(f"{name} {moment.isoformat()!r} has no time zone; add one (Z)")
        wanted = None if status is None else _status(status)
        now = self.clock()
        return [
            o
            for o in self._all()
            if (since is None or o.received_at >= since)
            and (until is None or o.received_at < until)
            and (wanted is None or o.status(now) is wanted)
            and (post_id is None or o.post_id == post_id)
            and (clients is None or o.client in clients)
        ]

    def get(self, order_id: int | str, *, clients: Sequence[str] | None = None) -> Order:
        """One order by its id. Raises ``NotFoundError`` (also for an id that is not a
        number)."""
        number = _id(order_id)
        for order in self._all():
            if order.id == number and (clients is None or order.client in clients):
                return order
        raise NotFoundError(f"no removal order {order_id!r}; 'amber order list' lists them")

    def confirm(
        self,
        order_id: int | str,
        *,
        by: str,
        removal: Removal | str = Removal.removed,
        removed_at: datetime | None = None,
    ) -> Order:
        """Record that the platform removed the ordered content or disabled access to it
        at ``removed_at`` (default: now), once per order; the evidence is then kept six
        months from that time at least, and the webhooks are told. Raises
        ``NotFoundError``, ``UserError`` for a bad ``removal`` or a time before the order
        or in the future, ``ConflictError`` when it was confirmed already."""
        order = self.get(order_id)
        how = _removal(removal)
        now = self.clock()
        at = now if removed_at is None else removed_at
        if at.utcoffset() is None:
            raise UserError(f"removed_at {at.isoformat()!r} has no time zone; add one (Z)")
        if at < order.received_at:
            raise UserError(
                f"removed_at {at.isoformat()} is before order {order.id} was received "
                f"({order.received_at.isoformat()}); give the time the platform removed it"
            )
        if at > now:
            raise UserError(
                f"removed_at {at.isoformat()} is in the future; give the time the platform "
                "removed it"
            )

        def once(item: Item, entries: Sequence[Entry]) -> None:
            for entry in entries:
                r = entry.record
                if r.get("event") == "order_complied" and r.get("order") == order.id:
                    raise ConflictError(
                        f"order {order.id} was confirmed already ({r.get('removal')} at "
                        f"{r.get('removed_at')}); nothing was recorded"
                    )

        vault = self.vault()
        self._step(
            order,
            "order_complied",
            step="complied",
            by=by,
            check=once,
            removal=how.value,
            removed_at=_now_text(at),
        )
        keep = at + self.preservation
        retain = vault.items()[order.key].retain_until
        if retain < keep:
            vault.extend(
                order.key,
                keep,
                reason=f"six months from the removal on order {order.id} (EU 2021/784 Art. 6(1))",
                actor=by,
            )
        return self.get(order.id)

    def extend(self, order_id: int | str, until: datetime, *, reason: str, by: str) -> Order:
        """Keep the ordered content's evidence until ``until`` (Art. 6(2): an authority's
        or court's request; ``reason`` names it). Raises ``NotFoundError``, ``UserError``
        without a reason or for a date already past, ``ConflictError`` when it is kept
        that long already or was deleted."""
        order = self.get(order_id)
        if until.utcoffset() is None:
            raise UserError(f"until {until.isoformat()!r} has no time zone; add one (Z)")
        if until <= self.clock():
            raise UserError(f"until {until.isoformat()} is not in the future; give a later date")
        self.vault().extend(order.key, until, reason=f"order {order.id}: {reason}", actor=by)
        return self.get(order.id)

    def notify_provider(self, order_id: int | str, *, by: str, author: str | None = None) -> Order:
        """Record the notice to the content provider (Art. 11) and send it by webhook for
        the platform to deliver (``order.step`` ``provider_notice``, its ``notice.text``);
        once per order, after the removal is confirmed. Raises ``NotFoundError``,
        ``ConflictError`` before the confirmation or when sent already."""
        order = self.get(order_id)
        text = provider_notice(order, author=author)

        def once(item: Item, entries: Sequence[Entry]) -> None:
            for entry in entries:
                r = entry.record
                if r.get("event") == "provider_notified" and r.get("order") == order.id:
                    raise ConflictError(
                        f"the content provider was notified of order {order.id} already (at "
                        f"{r.get('time')}); nothing was recorded"
                    )

        self._step(order, "provider_notified", step="provider_notice", by=by, check=once, text=text)
        return self.get(order.id)

    def notify_authorities(
        self, order_id: int | str, *, authority: str, by: str, text: str = ""
    ) -> Order:
        """Record that the authorities (``authority``: who was told) were informed of an
        imminent threat to life in the ordered post (Art. 14(5)), once per post, and tell
        the webhooks (``order.step`` ``authorities_notice``). Raises ``NotFoundError``,
        ``UserError`` without an authority, ``ConflictError`` when recorded already."""
        order = self.get(order_id)
        if not authority.strip():
            raise UserError("name the authority that was informed (e.g. 'Europol IRU')")

        def once(item: Item, entries: Sequence[Entry]) -> None:
            for entry in entries:
                r = entry.record
                if (
                    r.get("event") == "authorities_notified"
                    and r.get("post_id") == order.post_id
                    and str(r.get("client", DEFAULT_CLIENT)) == order.client
                ):
                    raise ConflictError(
                        f"the authorities were informed of post {order.post_id!r} already "
                        f"({r.get('authority')}, at {r.get('time')}); it is recorded once"
                    )

        self._step(
            order,
            "authorities_notified",
            step="authorities_notice",
            by=by,
            check=once,
            authority=authority,
            text=text,
        )
        return self.get(order.id)

    def _step(
        self,
        order: Order,
        event: str,
        *,
        step: str,
        by: str,
        check: Callable[[Item, Sequence[Entry]], None],
        **fields: Any,
    ) -> None:
        """Append ``event`` about ``order`` to its item's custody (refused by ``check``)
        and tell the webhooks, in the transaction that writes their deliveries: a refused
        or failed append leaves none."""
        vault = self.vault()
        with self.db.begin() as conn:
            vault.record(order.key, event, actor=by, check=check, order=order.id, **fields)
            row = conn.execute(
                sa.select(decisions).where(
                    decisions.c.client == order.client, decisions.c.post_id == order.post_id
                )
            ).first()
            after = self.get(order.id)
            payload = {
                **(
                    {"post_id": order.post_id, "client": order.client, "version": order.version}
                    if row is None
                    else event_payload(row._mapping)
                ),
                "order": {**after.to_json(self.clock()), "step": step},
            }
            emit(conn, Event.order, payload, now=self.clock())

    def _all(self) -> list[Order]:
        vault = self.vault()
        items = vault.items()  # reads what other processes appended
        return read_orders(vault.log.entries, items)


def _id(order_id: int | str) -> int:
    if isinstance(order_id, bool):
        raise NotFoundError(f"no removal order {order_id!r}")
    if isinstance(order_id, int):
        return order_id
    text = str(order_id).strip()
    if not text.isdigit() or len(text) > 18:
        raise NotFoundError(
            f"no removal order {order_id!r}: an order id is a number ('amber order list')"
        )
    return int(text)


def _status(value: OrderStatus | str) -> OrderStatus:
    try:
        return OrderStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in OrderStatus)
        raise UserError(f"status {value!r} is unknown; use one of: {allowed}") from None


def _removal(value: Removal | str) -> Removal:
    try:
        return Removal(value)
    except ValueError:
        raise UserError(f"removal {value!r} is unknown; use removed or disabled") from None
