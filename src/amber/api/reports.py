"""User reports (``ingest`` scope): the platform relays a user's report of a post
(``POST /v1/reports``), and lists the reports kept (``amber.reports``).

A token reports and reads the reports of its own posts and of the local ones, as it reads
their decisions (``amber.api.posts``); an ``admin`` token every client's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from amber.api.deps import EngineDep, Ingest, errors
from amber.api.posts import ClientQuery, _readable, _stored, _utc
from amber.reports import MAX_LIMIT, ReportStore

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class ReportIn(BaseModel):
    """A user's report of a post, relayed by the platform."""

    post_id: str = Field(description="The post reported, as it was sent to amber")
    category: str = Field(
        description="What the user reports it for: one of the policy's [reports] categories "
        "(threat_to_life, self_harm, terrorism, child_safety, violence, hate, harassment, "
        "illegal, other by default)"
    )
    text: str = Field(description="What the user wrote (may be empty)")
    reporter: str | None = Field(
        None, description="Who reported it, as the platform names them (one report each)"
    )


@router.post("", responses=errors(400, 404, 409, 413, 422))
async def file_report(
    body: ReportIn, engine: EngineDep, token: Ingest, client: ClientQuery = None
) -> dict[str, Any]:
    """File a user's report: the post is decided again with it and goes to a person (a
    post amber allowed is reviewed), queued by its category's urgency (a threat to life
    within the hour); the platform hears of the changed decision by webhook. The same
    ``reporter`` reporting a post again in one category answers the first report
    (``new`` false). 404 for a post amber never decided; 409 when the post keeps the
    most reports already; 503 when its evidence cannot be kept (nothing stored)."""

    def report() -> dict[str, Any]:
        decision = _stored(engine, token, body.post_id, client)
        filed = engine.report(
            body.post_id,
            category=body.category,
            text=body.text,
            reporter=body.reporter,
            client=decision.client,
        )
        return filed.to_json()

    return await run_in_threadpool(report)


@router.get("", responses=errors(400, 422))
def reports(
    engine: EngineDep,
    token: Ingest,
    since: Annotated[
        datetime | None, Query(description="Received at or after this ISO time (UTC if no zone)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Received before this ISO time (UTC if no zone)")
    ] = None,
    category: Annotated[str | None, Query(description="Only this category")] = None,
    post_id: Annotated[str | None, Query(description="Only this post's reports")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
    client: ClientQuery = None,
) -> list[dict[str, Any]]:
    """Reports kept with the decisions, the newest first, each with where its post stands."""
    found = ReportStore(engine.db).find(
        since=_utc(since),
        until=_utc(until),
        category=category,
        post_id=post_id,
        clients=_readable(token, client),
        limit=limit,
    )
    return [r.to_json() for r in found]


@router.get("/{report_id}", responses=errors(400, 404, 422))
def report(
    report_id: str, engine: EngineDep, token: Ingest, client: ClientQuery = None
) -> dict[str, Any]:
    """One report and where its post stands."""
    return ReportStore(engine.db).get(report_id, clients=_readable(token, client)).to_json()
