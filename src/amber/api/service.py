"""The service itself: liveness for load balancers (no token), health and metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from amber import __version__
from amber.api.deps import Admin, EngineDep, Ingest, errors, ok_as

router = APIRouter(prefix="/v1", tags=["service"])


@router.get("/live")
def live() -> dict[str, str]:
    """The process answers HTTP: for load balancers; no token, no database."""
    return {"status": "ok"}


@router.get("/health", responses=errors())
def health(engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """The service is up; which worker process answered, how current its index is, and
    the problems with its banks that the policy's ``[checks]`` report (``problems``: each
    ``{"check", "severity", "message"}``, as ``amber doctor`` gives them)."""
    from amber.doctor import check_banks

    with engine.write_lock:
        engine.matcher.sync_if_stale()
    return {
        "status": "ok",
        "version": __version__,
        "worker": os.getpid(),
        "index": {"hashes": len(engine.matcher.index), "max_id": engine.matcher.index.max_id},
        "problems": [p.to_json() for p in check_banks(engine)],
    }


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ok_as("text/plain", "Prometheus text format"), **errors()},
)
def metrics(request: Request, engine: EngineDep, _: Admin) -> PlainTextResponse:
    """Prometheus metrics: decisions, request latency, each exchange's fetches and each
    webhook's deliveries (``amber_webhook_*``)."""
    rendered = request.app.state.metrics.render(
        engine.exchanges.statuses(), engine.webhooks.all(), now=engine.clock()
    )
    return PlainTextResponse(rendered)
