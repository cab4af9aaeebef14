"""Accounts (``ingest`` scope): the authors of decided posts, their record and history
(``amber.accounts``).

A token reads the accounts of its own posts and of the local ones, as it reads their
decisions (``amber.api.posts``); an ``admin`` token reads every client's and names the
client (``?client=``) when several have an author of that name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from amber.api.deps import EngineDep, Ingest, errors
from amber.api.posts import ClientQuery, _readable
from amber.errors import NotFoundError
from amber.tokens import Scope

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
#: The largest ``limit`` of these routes.
MAX_LIMIT = 10_000


@router.get("", responses=errors(400, 422))
def accounts(
    engine: EngineDep,
    token: Ingest,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
    client: ClientQuery = None,
) -> list[dict[str, Any]]:
    """The accounts with strikes or a threat to life in the account policy's window, the
    most strikes first, each with the account action its record recommends."""
    found = engine.accounts.with_strikes(clients=_readable(token, client), limit=limit)
    return [a.to_json() for a in found]


@router.get("/{author}", responses=errors(400, 404, 409, 422))
def account(
    author: str,
    engine: EngineDep,
    token: Ingest,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="At most this many decisions")
    ] = 100,
    client: ClientQuery = None,
) -> dict[str, Any]:
    """An account: its strikes now, the account action they recommend, its posts by
    verdict and its decisions, newest first, each with its links (the decision, its
    statements, the console's item). A token's own client's author comes before the
    local one of the same name; 404 for an author with no decided post."""
    clients = _readable(token, client)
    if clients is not None and not clients:
        raise NotFoundError(f"no decided post has author {author!r}")
    if Scope.admin in token.scopes:
        return engine.accounts.show(author, client=client, limit=limit).to_json()
    return engine.accounts.show(author, clients=clients, limit=limit).to_json()
