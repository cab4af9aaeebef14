"""Removal orders (EU 2021/784, ``admin`` scope, as registering one is): the order
records (``amber.orders``), the removal confirmed back with its time, the evidence kept
longer, the content provider's notice and the threat-to-life notice; and the
transparency report of a period (``amber.transparency``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from amber.api.deps import Admin, EngineDep, errors
from amber.errors import UserError
from amber.orders import Orders, Removal
from amber.statements import parse_moment, parse_range
from amber.transparency import build_report

router = APIRouter(prefix="/v1", tags=["orders"])


class RemovedIn(BaseModel):
    """The platform removed the ordered content (or disabled access to it) at
    ``removed_at`` (default: when amber is told)."""

    removal: Removal = Field(Removal.removed, description="removed or disabled")
    removed_at: str | None = Field(None, description="ISO 8601 time, UTC if no zone")


class ExtensionIn(BaseModel):
    """Keep the evidence until ``until`` (Art. 6(2)), on the request ``reason`` names."""

    until: str = Field(description="ISO 8601 date or time; a date keeps its whole day")
    reason: str = Field(description="whose request: authority or court, reference")


class ProviderNoticeIn(BaseModel):
    """The content provider's name, to address the notice (optional)."""

    author: str | None = None


class AuthoritiesNoticeIn(BaseModel):
    """Who was informed of the threat to life, and what they were told."""

    authority: str
    text: str = ""


def _moment(text: str | None, name: str, *, end: bool = False) -> datetime | None:
    return None if text is None else parse_moment(text, name, end=end)


@router.get("/orders", responses=errors(400, 422))
def order_list(
    engine: EngineDep,
    _: Admin,
    status: Annotated[str | None, Query(description="Only open, overdue, complied or late")] = None,
    start: Annotated[
        str | None, Query(alias="from", description="Received at or after this ISO time")
    ] = None,
    end: Annotated[
        str | None,
        Query(alias="to", description="Received before this ISO time; a date takes its whole day"),
    ] = None,
) -> list[dict[str, Any]]:
    """Removal orders, oldest first, each with its status and the seconds left on its
    hour (negative once overdue), or the seconds it took to act."""
    orders = Orders.of(engine)
    found = orders.find(
        since=_moment(start, "from"), until=_moment(end, "to", end=True), status=status
    )
    now = engine.clock()
    return [o.to_json(now) for o in found]


@router.get("/orders/{order_id}", responses=errors(404, 422))
def order_show(order_id: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One removal order: the order, its status, the removal confirmed, the evidence's
    retention and extensions, the notices sent."""
    return Orders.of(engine).get(order_id).to_json(engine.clock())


@router.post("/orders/{order_id}/removed", responses=errors(400, 404, 409, 413, 422))
def order_removed(
    order_id: str, body: RemovedIn, engine: EngineDep, token: Admin
) -> dict[str, Any]:
    """The platform removed the content or disabled access to it: recorded once, with
    its time, as a custody event (409 when confirmed already); the evidence is kept six
    months from then at least, and the webhooks get an ``order`` event (step
    ``complied``)."""
    at = _moment(body.removed_at, "removed_at")
    with engine.write_lock:
        done = Orders.of(engine).confirm(
            order_id, by=f"token:{token.name}", removal=body.removal, removed_at=at
        )
    return done.to_json(engine.clock())


@router.post("/orders/{order_id}/preservation", responses=errors(400, 404, 409, 413, 422))
def order_preservation(
    order_id: str, body: ExtensionIn, engine: EngineDep, token: Admin
) -> dict[str, Any]:
    """Keep the ordered content's evidence longer (Art. 6(2)); 409 when it is kept that
    long already."""
    until = parse_moment(body.until, "until", end=True)
    with engine.write_lock:
        done = Orders.of(engine).extend(
            order_id, until, reason=body.reason, by=f"token:{token.name}"
        )
    return done.to_json(engine.clock())


@router.post("/orders/{order_id}/provider-notice", responses=errors(400, 404, 409, 413, 422))
def order_provider_notice(
    order_id: str, engine: EngineDep, token: Admin, body: ProviderNoticeIn | None = None
) -> dict[str, Any]:
    """Record the notice to the content provider (Art. 11) and send it by webhook
    (step ``provider_notice``); once, after the removal is confirmed (409 otherwise)."""
    with engine.write_lock:
        done = Orders.of(engine).notify_provider(
            order_id, by=f"token:{token.name}", author=None if body is None else body.author
        )
    return done.to_json(engine.clock())


@router.post("/orders/{order_id}/authorities-notice", responses=errors(400, 404, 409, 413, 422))
def order_authorities_notice(
    order_id: str, body: AuthoritiesNoticeIn, engine: EngineDep, token: Admin
) -> dict[str, Any]:
    """Record that the authorities were informed of an imminent threat to life in the
    ordered post (Art. 14(5)); once per post (409 after)."""
    with engine.write_lock:
        done = Orders.of(engine).notify_authorities(
            order_id, authority=body.authority, by=f"token:{token.name}", text=body.text
        )
    return done.to_json(engine.clock())


@router.get("/report", responses=errors(400, 422))
def transparency_report(
    engine: EngineDep,
    _: Admin,
    start: Annotated[
        str, Query(alias="from", description="ISO 8601 date or time (UTC if no zone)")
    ],
    end: Annotated[
        str, Query(alias="to", description="ISO time, exclusive; a date takes its whole day")
    ],
) -> dict[str, Any]:
    """The transparency report of a period, as ``amber report --format json`` writes it."""
    begin, finish = parse_range(start, end)
    if begin.year < 1 or finish.year > 9999:  # pragma: no cover - parse_range bounds it
        raise UserError("dates must be within years 1 to 9999")
    return build_report(engine, begin, finish).to_json()
