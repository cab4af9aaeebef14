"""Appeals (EU DSA Art. 20): the platform files the affected user's appeal against a
restriction (``ingest`` scope, its own posts, as it reads their decisions), reviewers list
and decide them (``review`` scope); ``amber.review.appeals`` holds the rules.

An ``ingest`` token reads the appeals of its own posts and the local ones; a ``review`` or
``admin`` token reads every client's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from amber.api.deps import EngineDep, Ingest, IngestOrReviewer, Reviewer, errors
from amber.api.posts import ClientQuery, _readable, _stored
from amber.review.appeals import MAX_LIMIT
from amber.tokens import Scope, Token

router = APIRouter(prefix="/v1/appeals", tags=["appeals"])


class AppealIn(BaseModel):
    """The user's appeal, sent by the platform on their behalf: the post it is about and
    the user's words (why the decision was wrong; at most 10,000 characters). ``client``
    names whose post when an admin token files it."""

    post_id: str
    text: str
    client: str | None = None


class AppealDecisionIn(BaseModel):
    """A reviewer's outcome: ``uphold`` (the restriction stands) or ``reverse`` (the post
    is restored), and the reason the user is told."""

    outcome: str
    reason: str


def _clients(token: Token, client: str | None) -> list[str] | None:
    """Whose appeals ``token`` reads: a reviewer's or admin's every client's (or
    ``client``'s), the platform's its own and the local ones."""
    if token.scopes & {Scope.review, Scope.admin}:
        return None if client is None else [client]
    return _readable(token, client)


@router.post("", status_code=201, responses=errors(400, 404, 409, 413, 422))
def file_appeal(body: AppealIn, engine: EngineDep, token: Ingest) -> dict[str, Any]:
    """File the user's appeal against the restriction of their post. 409 (naming the
    rule) for a post that is not restricted, a decision more than six months old, or a
    post with an open appeal; 404 for a post the token cannot read."""
    decision = _stored(engine, token, body.post_id, body.client)
    with engine.write_lock:  # its custody event is written to the vault
        appeal = engine.appeals.file(
            decision.post_id, body.text, filed_by=f"token:{token.name}", client=decision.client
        )
    return appeal.to_json()


@router.get("", responses=errors(400, 422))
def appeals(
    engine: EngineDep,
    token: IngestOrReviewer,
    status: Annotated[str | None, Query(description="Only those open, upheld or reversed")] = None,
    post_id: Annotated[str | None, Query(description="Only this post's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
    client: ClientQuery = None,
) -> list[dict[str, Any]]:
    """Appeals: open ones first, the nearest target date (``due_at``) first, then the
    decided ones, the latest first."""
    found = engine.appeals.find(
        status=status, post_id=post_id, clients=_clients(token, client), limit=limit
    )
    return [a.to_json() for a in found]


@router.get("/{appeal_id}", responses=errors(400, 404, 422))
def appeal(appeal_id: int, engine: EngineDep, token: IngestOrReviewer) -> dict[str, Any]:
    """One appeal, with its outcome once decided."""
    return engine.appeals.get(appeal_id, clients=_clients(token, None)).to_json()


@router.post("/{appeal_id}/decision", responses=errors(400, 404, 409, 413, 422))
def decide_appeal(
    appeal_id: int, body: AppealDecisionIn, engine: EngineDep, token: Reviewer
) -> dict[str, Any]:
    """Uphold or reverse an open appeal, as the token's reviewer. 409 for an appeal
    decided already, or a reviewer who decided the post (another reviewer must). A
    reversal restores the post and is delivered to the webhooks (event ``appeal``)."""
    with engine.write_lock:  # its custody event is written to the vault
        done = engine.appeals.decide(appeal_id, token.name, body.outcome, reason=body.reason)
    return done.to_json()
