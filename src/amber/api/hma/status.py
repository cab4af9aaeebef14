"""HMA's service routes: ``/status`` (readiness, for a load balancer), ``/status/live``
(liveness) and ``/openapi/openapi.json`` (the description of HMA's routes alone, titled as
HMA's). None needs a token, as ``/v1/live``.

``/status`` asks the app's index-state provider (``app.state.hma_index_state``, called with
the engine): amber's matcher opens its indexes with the engine and brings them up to date
before each lookup, so amber's own provider always says ready; the provider is there to be
replaced where indexes load in the background (HMA's tests fake HMA's index cache).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse

from amber import __version__
from amber.api.deps import ok_as
from amber.api.hma import TITLE, HmaRole, routers, settings
from amber.engine import Engine

router = APIRouter(tags=["hma"])


class IndexState(StrEnum):
    """Whether the matcher's indexes can answer: loaded and current, not loaded yet, or
    not refreshed for too long."""

    ready = "ready"
    not_loaded = "not_loaded"
    stale = "stale"


#: What ``/status`` answers for each index state: HMA's words and status.
ANSWERS: dict[IndexState, tuple[int, str]] = {
    IndexState.ready: (200, "I-AM-ALIVE"),
    IndexState.not_loaded: (503, "INDEX-NOT-LOADED"),
    IndexState.stale: (503, "INDEX-STALE"),
}
IndexStateProvider = Callable[[Engine], IndexState]


def amber_index_state(engine: Engine) -> IndexState:
    """amber's indexes: always ready (opened with the engine, synced before each lookup)."""
    return IndexState.ready


STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ok_as("text/plain", "I-AM-ALIVE"),
    503: {
        "description": "INDEX-NOT-LOADED or INDEX-STALE",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}


@router.get("/status", response_class=PlainTextResponse, responses=STATUS_RESPONSES)
def status(request: Request) -> PlainTextResponse:
    """Ready to match (HMA's readiness check): ``I-AM-ALIVE``, or 503 with
    ``INDEX-NOT-LOADED`` or ``INDEX-STALE``. No token."""
    state = IndexState.ready
    if HmaRole.matcher in settings(request).roles:
        provider: IndexStateProvider = request.app.state.hma_index_state
        state = provider(request.app.state.engine)
    code, text = ANSWERS[state]
    return PlainTextResponse(text, status_code=code)


@router.get(
    "/status/live",
    response_class=PlainTextResponse,
    responses=ok_as("text/plain", "I-AM-ALIVE"),
)
def live() -> PlainTextResponse:
    """The process answers (HMA's liveness check): ``I-AM-ALIVE``, whatever the indexes'
    state, so a restart loop cannot start from a cold index. No token."""
    return PlainTextResponse(ANSWERS[IndexState.ready][1])


@router.get("/openapi/openapi.json", include_in_schema=False)
def description(request: Request) -> JSONResponse:
    """The OpenAPI description of HMA's routes, titled as HMA's."""
    cached: dict[str, Any] | None = getattr(request.app.state, "hma_openapi", None)
    if cached is None:
        cached = openapi_spec()
        request.app.state.hma_openapi = cached
    return JSONResponse(cached)


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI description of HMA's routes alone. A malformed request is a 400 with
    HMA's body here, so FastAPI's 422 is left out."""
    spec = get_openapi(
        title=TITLE,
        version=__version__,
        description=(
            "amber's HMA-compatible API: the hasher (/h), matcher (/m) and curator (/c) "
            "routes of Meta's Hasher-Matcher-Actioner, behind amber's tokens."
        ),
        routes=[route for r in routers() for route in r.routes],
    )
    for methods in spec["paths"].values():
        for operation in methods.values():
            operation["responses"].pop("422", None)
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec
