"""Review (``review`` scope): the queue, most urgent first; exclusive locks; outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from amber.api.deps import EngineDep, Reviewer

router = APIRouter(prefix="/v1/review", tags=["review"])
#: The largest ``limit`` a list route takes (a larger one is a 422 naming ``limit``).
MAX_LIMIT = 100_000


class ReviewIn(BaseModel):
    """A reviewer's outcome: ``confirm`` (with ``action`` remove or keep_restricted, and
    optionally a ``bank`` for the media), ``reject`` or ``escalate``; always a reason."""

    outcome: str
    reason: str
    action: str | None = None
    bank: str | None = None


@router.get("/queue")
def queue(
    engine: EngineDep,
    _: Reviewer,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 50,
) -> list[dict[str, Any]]:
    """Items awaiting review, most urgent first."""
    return [i.to_json() for i in engine.review.items(limit=limit)]


@router.post("/next")
def next_item(engine: EngineDep, token: Reviewer) -> dict[str, Any] | None:
    """Lock and return the most urgent item nobody else holds (null when none)."""
    item = engine.review.next(token.name)
    return None if item is None else item.to_json()


@router.post("/{post_id}/lock")
def lock(post_id: str, engine: EngineDep, token: Reviewer) -> dict[str, str]:
    """Take or renew the exclusive lock on an item."""
    expires = engine.review.lock(post_id, token.name)
    return {"post_id": post_id, "expires_at": expires.isoformat()}


@router.delete("/{post_id}/lock")
def unlock(post_id: str, engine: EngineDep, token: Reviewer) -> dict[str, str]:
    """Give an item back."""
    engine.review.unlock(post_id, token.name)
    return {"post_id": post_id}


@router.post("/{post_id}/decision")
def decide(post_id: str, body: ReviewIn, engine: EngineDep, token: Reviewer) -> dict[str, Any]:
    """Confirm (remove / keep_restricted, optionally into a bank), reject or escalate."""
    with engine.write_lock:  # a bank may grow: the index and the vault take one writer
        done = engine.review.decide(
            post_id,
            token.name,
            body.outcome,
            reason=body.reason,
            action=body.action,
            bank=body.bank,
        )
    return done.to_json()
