"""Review (``review`` scope): the queue, most urgent first; exclusive locks; outcomes; each
post's history (reopen an outcome, revert bank entries a confirmation added); the
escalation queue and who owns each item."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from amber.api.deps import EngineDep, Reviewer, errors

router = APIRouter(prefix="/v1/review", tags=["review"])
#: The largest ``limit`` a list route takes (a larger one is a 422 naming ``limit``).
MAX_LIMIT = 100_000
#: The most appeals a post's history lists.
APPEALS_SHOWN = 1000


class ReviewIn(BaseModel):
    """A reviewer's outcome: ``confirm`` (with ``action`` remove or keep_restricted, and
    optionally a ``bank`` for the media), ``reject`` or ``escalate``; always a reason."""

    outcome: str
    reason: str
    action: str | None = None
    bank: str | None = None


@router.get("/queue", responses=errors(400, 422))
def queue(
    engine: EngineDep,
    _: Reviewer,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 50,
) -> list[dict[str, Any]]:
    """Items awaiting review, most urgent first."""
    return [i.to_json() for i in engine.review.items(limit=limit)]


@router.post("/next", responses=errors(429))
def next_item(engine: EngineDep, token: Reviewer) -> dict[str, Any] | None:
    """Lock and return the most urgent item nobody else holds (null when none)."""
    item = engine.review.next(token.name)
    return None if item is None else item.to_json()


@router.post("/{post_id}/lock", responses=errors(400, 404, 409, 422, 429))
def lock(post_id: str, engine: EngineDep, token: Reviewer) -> dict[str, str]:
    """Take or renew the exclusive lock on an item."""
    expires = engine.review.lock(post_id, token.name)
    return {"post_id": post_id, "expires_at": expires.isoformat()}


@router.delete("/{post_id}/lock", responses=errors(400, 404, 409, 422))
def unlock(post_id: str, engine: EngineDep, token: Reviewer) -> dict[str, str]:
    """Give an item back."""
    engine.review.unlock(post_id, token.name)
    return {"post_id": post_id}


@router.post("/{post_id}/decision", responses=errors(400, 404, 409, 413, 422))
def decide(post_id: str, body: ReviewIn, engine: EngineDep, token: Reviewer) -> dict[str, Any]:
    """Confirm (remove / keep_restricted, optionally into a bank), reject or escalate an
    item awaiting review whose lock the token holds, or an escalated item it owns."""
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


class ReasonIn(BaseModel):
    """Why: every change to a reviewer's outcome carries a reason."""

    reason: str


class OwnIn(BaseModel):
    """Taking an escalated item on, with an optional note."""

    reason: str = ""


class UnbankIn(BaseModel):
    """Revert bank entries reviews of the post added: ``entries`` (ids), or every one
    left; always a reason."""

    reason: str
    entries: list[int] | None = None


@router.get("/escalations", responses=errors(400, 422))
def escalations(
    engine: EngineDep,
    _: Reviewer,
    owned: Annotated[
        bool | None, Query(description="Only the owned (true) or the unowned (false)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many")] = 1000,
) -> list[dict[str, Any]]:
    """Escalated items, unowned first (most urgent first), then owned, each with
    ``escalation``: who escalated it, when, why, and who owns it."""
    return [e.to_json() for e in engine.escalations.items(owned=owned, limit=limit)]


@router.post("/{post_id}/own", responses=errors(400, 404, 409, 413, 422))
def own(post_id: str, body: OwnIn, engine: EngineDep, token: Reviewer) -> dict[str, Any]:
    """Take an escalated item on: from then on only its owner decides it (with the
    decision route, no lock needed). 409 when another reviewer owns it, or it is not
    escalated."""
    return engine.escalations.own(post_id, token.name, reason=body.reason).to_json()


@router.get("/{post_id}/history", responses=errors(400, 404, 409, 422))
def history(post_id: str, engine: EngineDep, _: Reviewer) -> dict[str, Any]:
    """Every step of the post's review, oldest first (outcomes, reopens, ownership,
    bank entries reverted), never overwritten; where it stands; the bank entries its
    reviews added that are still to revert (``banked``); and its appeals."""
    item = engine.review.item(post_id)
    steps = engine.history.steps(post_id)
    found = engine.appeals.find(post_id=post_id, clients=[item.client], limit=APPEALS_SHOWN)
    return {
        "post_id": post_id,
        "client": item.client,
        "state": item.state,
        "owner": engine.review.owner(post_id, client=item.client),
        "history": [s.to_json() for s in steps],
        "banked": [
            {"entry": entry, "bank": bank}
            for entry, bank in sorted(engine.history.banked(post_id).items())
        ],
        "appeals": [a.to_json() for a in found],
    }


@router.post("/{post_id}/reopen", responses=errors(400, 404, 409, 413, 422))
def reopen(post_id: str, body: ReasonIn, engine: EngineDep, token: Reviewer) -> dict[str, Any]:
    """Take a confirmed or rejected item back to the queue to change its outcome; the
    outcome stays in the history. 409 for an item in another state or with an open
    appeal."""
    return engine.history.reopen(post_id, token.name, reason=body.reason).to_json()


@router.post("/{post_id}/unbank", responses=errors(400, 404, 409, 413, 422))
def unbank(
    post_id: str, body: UnbankIn, engine: EngineDep, token: Reviewer
) -> list[dict[str, Any]]:
    """Revert a wrong "add to bank": delete the entries reviews of the post added, one by
    one through the bank's entry control (its audit names ``reviewer:<token>``); one
    ``unbank`` step per bank. 409 when none is left."""
    with engine.write_lock:  # the bank's index changes
        steps = engine.history.unbank(post_id, token.name, reason=body.reason, entries=body.entries)
    return [s.to_json() for s in steps]
