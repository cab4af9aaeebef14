"""Statements of reasons (DSA Art. 17, ``ingest`` scope): a post's, and the batches of a
time range ready for the DSA Transparency Database (``amber.statements``).

A token reads the statements of its own posts and of the local ones, as it reads their
decisions (``amber.api.posts``); an ``admin`` token reads every client's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from amber.api.deps import EngineDep, Ingest, errors
from amber.api.posts import ClientQuery, _readable, _stored
from amber.dsa import BATCH_ENDPOINT, BATCH_SIZE
from amber.errors import UserError
from amber.statements import Statements, batches, parse_range

router = APIRouter(prefix="/v1/statements", tags=["statements"])

#: The most statements one answer of ``GET /v1/statements`` holds (``amber statements``
#: writes any number, in files).
MAX_STATEMENTS = 10_000


@router.get("", responses=errors(400, 422))
def statement_batches(
    engine: EngineDep,
    token: Ingest,
    start: Annotated[
        str,
        Query(
            alias="from",
            description="Decided at or after this ISO 8601 date or time (UTC if no zone)",
        ),
    ],
    end: Annotated[
        str,
        Query(
            alias="to",
            description="Decided before this ISO time; a date takes in its whole day",
        ),
    ],
    client: ClientQuery = None,
) -> dict[str, Any]:
    """The statements of reasons decided in a time range, as request bodies of the
    Transparency Database's batch endpoint (``POST /api/v1/statements``, at most 100
    statements each), oldest first. 400 for a bad date, an empty range or more than
    10,000 statements (use ``amber statements``, or a shorter range)."""
    begin, finish = parse_range(start, end)
    found = Statements.of(engine).between(begin, finish, clients=_readable(token, client))
    if len(found) > MAX_STATEMENTS:
        raise UserError(
            f"{len(found)} statements were decided from {start!r} to {end!r}; one answer "
            f"holds at most {MAX_STATEMENTS}: ask for a shorter range, or use "
            "'amber statements --out DIR'"
        )
    return {
        "from": begin.isoformat(),
        "to": finish.isoformat(),
        "count": len(found),
        "batch_size": BATCH_SIZE,
        "endpoint": BATCH_ENDPOINT,
        "batches": batches(found),
    }


@router.get("/{post_id}", responses=errors(400, 404, 409, 422))
def post_statements(
    post_id: str, engine: EngineDep, token: Ingest, client: ClientQuery = None
) -> dict[str, Any]:
    """Every statement of reasons of a post, oldest first, each with its ``status``
    (``in_force``, ``superseded`` or ``reversed``) and the statement in the Transparency
    Database's fields (``statement``); ``in_force`` names the one in force, if any. 404
    for a post amber never restricted."""
    decision = _stored(engine, token, post_id, client)
    found = Statements.of(engine).for_post(post_id, client=decision.client)
    current = next((s.puid for s in reversed(found) if s.status == "in_force"), None)
    return {
        "post_id": post_id,
        "client": decision.client,
        "in_force": current,
        "statements": [s.to_json() for s in found],
    }
