"""``amber serve``: the HTTP API over the same library the command line uses.

This module only wires the app: the routers (one module per area: ``posts``, ``banks``,
``lookup``, ``review``, ``evidence``, ``exchanges``, ``webhooks``, ``service``, the offline
``docs`` and the reviewer console), middleware (body limit, access log), the one error body
and the lifespan (the evidence sweep and the webhook deliverer run in threads of their own). Every
route except ``GET /v1/live`` checks a Bearer token and its scope (``ingest``, ``review``,
``admin``; ``admin`` may do everything). Errors have one shape::

    {"error": {"type": "NotFoundError", "message": "...", "status": 404}}

HMA's routes (``amber.api.hma``: ``/h``, ``/m``, ``/c``, ``/status``) are served beside
``/v1`` with the same tokens, HMA's shapes and HMA's error body, ``{"message": "..."}``.

Routers parse input, make one library call on ``request.app.state.engine`` and render
the result; the work is in ``amber.engine``, ``amber.banks``, ``amber.review`` and
``amber.evidence``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from amber import __version__
from amber.api import accounts as account_routes
from amber.api import appeals as appeal_routes
from amber.api import banks, docs, evidence, hma, lookup, posts, review, service, statements
from amber.api import exchanges as exchange_routes
from amber.api import incidents as incident_routes
from amber.api import orders as order_routes
from amber.api import reports as report_routes
from amber.api import retrohunt as retrohunt_routes
from amber.api import webhooks as webhook_routes
from amber.api.hma import HmaSettings
from amber.api.hma.status import amber_index_state
from amber.api.metrics import Metrics
from amber.api.middleware import (
    AccessLog,
    BodyLimit,
    NoNul,
    SecurityHeaders,
    log_access_to_stderr,
)
from amber.engine import Engine, open_engine
from amber.errors import AmberError
from amber.store.db import database_failed
from amber.web import console, followup
from amber.webhook_delivery import DeliveryReport

MAX_BODY = 64 * 1024 * 1024
#: Seconds between sweeps of pending evidence (``Engine.sweep_evidence``).
SWEEP_EVERY = 60.0
#: Seconds between passes of the webhook deliverer (``amber.webhook_delivery``).
DELIVER_EVERY = 1.0
#: How ``amber serve --workers N`` hands its settings to each worker process (JSON).
SETTINGS_ENV = "AMBER_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    """One worker of ``amber serve --workers N``: its own engine, from the settings the
    parent process put in ``AMBER_SERVE_SETTINGS``; closed when the worker stops."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    engine = open_engine(
        db=settings["db"],
        vault=Path(settings["vault"]),
        signing_key=None if settings.get("signing_key") is None else Path(settings["signing_key"]),
        policy=None if settings["policy"] is None else Path(settings["policy"]),
    )
    media_root = settings["media_root"]
    return create_app(
        engine,
        media_root=None if media_root is None else Path(media_root),
        max_body=int(settings["max_body"]),
        owns_engine=True,
        allow_private_urls=bool(settings.get("allow_private_urls", False)),
        hma=HmaSettings.from_json(settings.get("hma") or {}),
        deliver_every=DELIVER_EVERY if settings.get("deliver_webhooks", True) else None,
    )


def create_app(
    engine: Engine,
    *,
    media_root: Path | None = None,
    max_body: int = MAX_BODY,
    owns_engine: bool = False,
    sweep_every: float | None = SWEEP_EVERY,
    allow_private_urls: bool = False,
    hma: HmaSettings | None = None,
    deliver_every: float | None = DELIVER_EVERY,
) -> FastAPI:
    """The API for ``engine``. JSON posts may name media only under ``media_root``.
    With ``owns_engine`` the app closes the engine when it shuts down. Pending evidence
    is swept at start-up and then every ``sweep_every`` seconds (``None``: once). URLs
    sent to hash may reach private, loopback and link-local addresses only with
    ``allow_private_urls`` (``amber.fetch``). ``hma`` says how HMA's routes are served
    (``amber serve --hma-anonymous``). While it runs, the webhook outbox is sent every
    ``deliver_every`` seconds (``None``: not by this app)."""
    app = _build(max_body=max_body)
    app.state.engine = engine
    app.state.sweep_every = sweep_every
    app.state.deliver_every = deliver_every
    app.state.media_root = media_root
    app.state.owns_engine = owns_engine
    app.state.allow_private_urls = allow_private_urls
    app.state.hma = hma or HmaSettings()
    #: What HMA's ``/status`` reports of the indexes (replaceable: HMA's tests fake it).
    app.state.hma_index_state = amber_index_state
    return app


def openapi_spec() -> dict[str, Any]:
    """The API's OpenAPI description (no engine needed: it describes the routes)."""
    return _build(max_body=MAX_BODY).openapi()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine: Engine = app.state.engine
    log_access_to_stderr()
    engine.matcher.warm_up()  # before the first post, not during it
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_evidence,
        args=(engine, app.state.sweep_every, stop),
        name="amber-evidence-sweep",
        daemon=True,
    )
    sweeper.start()  # at start-up, then every sweep_every seconds
    log_signer = engine.evidence_signer()  # a custody log in the database: sign in batches
    if log_signer is not None:
        threading.Thread(
            target=log_signer.run,
            args=(stop, _signing_failed),
            name="amber-custody-signer",
            daemon=True,
        ).start()
    deliverer = None
    if app.state.deliver_every is not None:
        deliverer = threading.Thread(
            target=engine.deliverer().run,
            args=(stop,),
            kwargs={
                "every": app.state.deliver_every,
                "on_report": _report_deliveries,
                "on_error": _delivery_failed,
            },
            name="amber-webhook-deliverer",
            daemon=True,
        )
        deliverer.start()
    try:
        yield
    finally:
        stop.set()
        sweeper.join(timeout=30)
        if deliverer is not None:
            deliverer.join(timeout=30)  # an attempt in flight ends within its timeouts
        if app.state.owns_engine:
            engine.close()


def _report_deliveries(report: DeliveryReport) -> None:
    """Log the webhook attempts that failed (the deliveries listing has every detail)."""
    for delivery, when, why in report.retrying:
        sys.stderr.write(
            f"amber: webhook delivery {delivery} failed ({why}); next attempt at "
            f"{when.isoformat()}\n"
        )
    for delivery, why in report.failed:
        sys.stderr.write(
            f"amber: webhook delivery {delivery} failed for good ({why}); retry it with "
            f"'amber webhook retry {delivery}'\n"
        )


def _signing_failed(exc: Exception) -> None:
    sys.stderr.write(f"amber: custody log signing failed: {type(exc).__name__}: {exc}\n")


def _delivery_failed(exc: Exception) -> None:
    sys.stderr.write(f"amber: webhook delivery pass failed: {type(exc).__name__}: {exc}\n")


def _sweep_evidence(engine: Engine, every: float | None, stop: threading.Event) -> None:
    """Finish the evidence a crash or a full disk left pending (``Engine.sweep_evidence``);
    failures are logged to stderr and tried again at the next sweep."""
    while not stop.is_set():
        try:
            report = engine.sweep_evidence()
        except Exception as exc:  # a database or disk fault: the server must go on
            sys.stderr.write(f"amber: evidence sweep failed: {type(exc).__name__}: {exc}\n")
        else:
            for post_id, reason in report.failed:
                sys.stderr.write(f"amber: evidence of {post_id!r} still pending: {reason}\n")
        if every is None or stop.wait(every):
            return


def _build(*, max_body: int) -> FastAPI:
    app = FastAPI(
        title="amber",
        version=__version__,
        description=(
            "Trust-and-safety engine: decisions, banks, review, evidence. HMA's routes "
            "(/h, /m, /c, /status) have their own description at /openapi/openapi.json "
            "(docs/hma.md)."
        ),
        lifespan=_lifespan,
        docs_url=None,  # served offline by amber.api.docs
        redoc_url=None,
    )
    app.state.metrics = Metrics()
    for area in (service, posts, statements, banks, review, evidence, docs):
        app.include_router(area.router)
    app.include_router(lookup.router)
    app.include_router(exchange_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(account_routes.router)
    app.include_router(report_routes.router)
    app.include_router(retrohunt_routes.router)
    app.include_router(appeal_routes.router)
    app.include_router(incident_routes.router)
    app.include_router(order_routes.router)
    app.include_router(console.router)
    app.include_router(followup.router)
    hma.mount(app)
    app.add_exception_handler(AmberError, _amber_error)  # type: ignore[arg-type]
    app.add_exception_handler(sa.exc.OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(sa.exc.TimeoutError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(NoNul)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog, metrics=app.state.metrics)  # outermost: logs 413s too
    return app


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message, "status": status}}, status_code=status
    )


def _error_for(request: Request, status: int, kind: str, message: str) -> JSONResponse:
    """amber's error body, or HMA's on HMA's routes."""
    if hma.serves(request.url.path):
        return hma.error(status, message)
    return _error(status, kind, message)


async def _amber_error(request: Request, exc: AmberError) -> JSONResponse:
    if hma.serves(request.url.path):
        response = hma.error(hma.error_status(exc), exc.message)
    else:
        response = _error(exc.http_status, type(exc).__name__, exc.message)
    if exc.http_status == 401:
        response.headers["www-authenticate"] = 'Bearer realm="amber"'
    return response


async def _database_down(
    request: Request, exc: sa.exc.OperationalError | sa.exc.TimeoutError
) -> JSONResponse:
    return _error_for(request, 503, "ExternalError", database_failed(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    path = request.url.path
    if not path.startswith("/v1/") and not hma.serves(path):  # the console's pages
        return await http_exception_handler(request, exc)
    response = _error_for(request, exc.status_code, "HTTPError", str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    status = 400 if hma.serves(request.url.path) else 422  # HMA answers 400
    return _error_for(
        request, status, "ValidationError", f"{where or 'request'}: {first.get('msg')}"
    )
