"""Retro-hunt (``admin`` scope): decide again the past posts that match bank entries
(``amber.retrohunt``); amber runs one by itself after every bank write that adds
entries, this runs one by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from amber.api.deps import Admin, EngineDep, errors
from amber.api.posts import _utc
from amber.retrohunt import MAX_LIMIT

router = APIRouter(prefix="/v1/retrohunt", tags=["banks"])


class RetrohuntIn(BaseModel):
    """Which entries to hunt with, and how many posts to decide again at most."""

    bank: str | None = Field(None, description="Only this bank's entries (default: every bank)")
    since: datetime | None = Field(
        None, description="Only entries added at or after this ISO time (UTC if no zone)"
    )
    limit: int | None = Field(
        None, ge=1, le=MAX_LIMIT, description="At most this many posts, newest first"
    )


@router.post("", responses=errors(400, 404, 413, 422))
async def retrohunt(body: RetrohuntIn, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Decide again the posts of the retention window whose stored hashes match the bank
    entries named, through the normal path (evidence, webhooks, statements); each new
    reason says ``found_by: "retro-hunt"``. The answer lists the posts decided again and
    those found but left as they were (already decided with the entries, held by a
    reviewer, not weakened, over the limit)."""

    def run() -> dict[str, Any]:
        return engine.retrohunt(bank=body.bank, since=_utc(body.since), limit=body.limit).to_json()

    return await run_in_threadpool(run)
