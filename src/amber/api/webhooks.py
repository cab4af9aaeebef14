"""Webhooks (admin): add, list, read and remove them; their deliveries, listed, read and
retried by hand (``amber.webhooks``). Sending is the server's background deliverer's, or
``amber webhook deliver``'s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from amber.api.banks import actor
from amber.api.deps import Admin, EngineDep, errors
from amber.webhooks import MAX_LIMIT

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    """A new webhook: the URL deliveries are POSTed to, the secret they are signed with
    (at least 16 characters; stored as given, never shown again), the events it takes
    (default all: ``decision``, ``review``, ``appeal``, ``order``) and, optionally, the
    one client whose posts it hears of."""

    url: str
    secret: str | None = None
    events: list[str] | None = None
    client: str | None = None


class RetryIn(BaseModel):
    """Which failed deliveries to send again: every one, or those of one webhook."""

    webhook: int | None = None


@router.get("", responses=errors())
def webhooks(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """Every webhook with its deliveries' counts (never its secret)."""
    return [w.to_json() for w in engine.webhooks.all()]


@router.post("", status_code=201, responses=errors(400, 413, 422))
def create_webhook(body: WebhookIn, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Add a webhook: from now on every event it takes is delivered to it, signed."""
    added = engine.webhooks.add(
        body.url, secret=body.secret, events=body.events, client=body.client, actor=actor(token)
    )
    return added.to_json()


@router.get("/deliveries", responses=errors(400, 404, 422))
def deliveries(
    engine: EngineDep,
    _: Admin,
    status: Annotated[
        str | None, Query(description="Only those pending, delivered or failed (given up)")
    ] = None,
    webhook: Annotated[int | None, Query(description="Only this webhook's")] = None,
    post_id: Annotated[str | None, Query(description="Only those about this post")] = None,
    event: Annotated[str | None, Query(description="Only this event's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
) -> list[dict[str, Any]]:
    """Deliveries, the newest first, with their state, attempts, last answer or error and
    the payload sent."""
    found = engine.webhooks.deliveries(
        state=status, webhook_id=webhook, post_id=post_id, event=event, limit=limit
    )
    return [d.to_json() for d in found]


@router.post("/deliveries/retry", responses=errors(400, 404, 413, 422))
def retry_failed(body: RetryIn, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Send every failed delivery (of ``webhook``, when given) again, as new."""
    return {"retried": engine.webhooks.retry_failed(webhook_id=body.webhook)}


@router.get("/deliveries/{delivery}", responses=errors(400, 404, 422))
def delivery(delivery: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One delivery by its id (``X-Amber-Delivery``)."""
    return engine.webhooks.delivery(delivery).to_json()


@router.post("/deliveries/{delivery}/retry", responses=errors(400, 404, 409, 422))
def retry(delivery: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Send a failed delivery again, as new (same id and body, attempts from zero); 409
    for one that is pending or delivered."""
    return engine.webhooks.retry(delivery).to_json()


@router.get("/{webhook_id}", responses=errors(400, 404, 422))
def get_webhook(webhook_id: int, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One webhook with its deliveries' counts."""
    return engine.webhooks.get(webhook_id).to_json()


@router.delete("/{webhook_id}", responses=errors(400, 404, 422))
def delete_webhook(webhook_id: int, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Remove a webhook; its deliveries go with it (pending ones are never sent)."""
    gone = engine.webhooks.remove(webhook_id)
    return {**gone.to_json(), "removed": True}
