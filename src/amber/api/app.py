"""``amber serve``: the HTTP API over the same library the command line uses.

Every route checks a Bearer token and its scope (``ingest``, ``review``, ``admin``;
``admin`` may do everything). Errors have one shape::

    {"error": {"type": "NotFoundError", "message": "...", "status": 404}}

Routers parse input, make one library call and render the result; the work is in
``amber.engine``, ``amber.banks``, ``amber.review`` and ``amber.evidence``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amber import __version__
from amber.engine import Engine, open_engine
from amber.errors import AmberError, NotFoundError, PermissionDeniedError, PostError, UserError
from amber.evidence.bag import export_bag
from amber.posts import parse_post
from amber.store.db import database_failed
from amber.tokens import Scope as TokenScope
from amber.tokens import Token
from amber.web import console

MAX_BODY = 64 * 1024 * 1024
#: How ``amber serve --workers N`` hands its settings to each worker process (JSON).
SETTINGS_ENV = "AMBER_SERVE_SETTINGS"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "type": "PayloadTooLarge",
                "status": 413,
                "message": f"request body over {limit} bytes",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _require(scope: TokenScope) -> Callable[[Request], Token]:
    """A dependency that admits a Bearer token holding ``scope`` (or ``admin``)."""

    def check(request: Request) -> Token:
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header.lower().startswith("bearer ") else None
        engine: Engine = request.app.state.engine
        token = engine.tokens.authenticate(secret)
        if scope not in token.scopes and TokenScope.admin not in token.scopes:
            raise PermissionDeniedError(
                f"token {token.name!r} lacks the {scope.value!r} scope this needs"
            )
        return token

    return check


Ingest = Annotated[Token, Depends(_require(TokenScope.ingest))]
Reviewer = Annotated[Token, Depends(_require(TokenScope.review))]
Admin = Annotated[Token, Depends(_require(TokenScope.admin))]


class PostIn(BaseModel):
    """A post per the input contract; media paths resolve under ``--media-root``."""

    id: str
    author: str | None = None
    created_at: str | None = None
    text: str | None = None
    poll: dict[str, Any] | None = None
    media: list[dict[str, Any]] = Field(default_factory=list)
    reply_to: str | None = None


class BankIn(BaseModel):
    name: str
    action: str = "remove"
    label: str | None = None
    threshold: int = 31


class BankPatch(BaseModel):
    action: str | None = None
    label: str | None = None
    threshold: int | None = None


class ReviewIn(BaseModel):
    outcome: str
    reason: str
    action: str | None = None
    bank: str | None = None


def app_from_env() -> FastAPI:
    """One worker of ``amber serve --workers N``: its own engine, from the settings the
    parent process put in ``AMBER_SERVE_SETTINGS``; closed when the worker stops."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    engine = open_engine(
        db=settings["db"],
        vault=Path(settings["vault"]),
        policy=None if settings["policy"] is None else Path(settings["policy"]),
    )
    media_root = settings["media_root"]
    return create_app(
        engine,
        media_root=None if media_root is None else Path(media_root),
        max_body=int(settings["max_body"]),
        owns_engine=True,
    )


def create_app(
    engine: Engine,
    *,
    media_root: Path | None = None,
    max_body: int = MAX_BODY,
    owns_engine: bool = False,
) -> FastAPI:
    """The API for ``engine``. JSON posts may name media only under ``media_root``.
    With ``owns_engine`` the app closes the engine when it shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.matcher.warm_up()  # before the first post, not during it
        try:
            yield
        finally:
            if owns_engine:
                engine.close()

    app = FastAPI(
        title="amber",
        version=__version__,
        description="Trust-and-safety engine: decisions, banks, review, evidence.",
        lifespan=lifespan,
    )
    work = threading.Lock()  # the engine's index and vault take one writer at a time
    registry = CollectorRegistry()
    shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if shared:  # amber serve --workers N: /v1/metrics sums every worker's files
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    own = None if shared else registry
    decided = Counter(
        "amber_decisions_total", "Posts decided, by verdict", ["verdict"], registry=own
    )
    latency = Histogram("amber_request_seconds", "Request latency", ["route"], registry=own)

    @app.middleware("http")
    async def timing(request: Request, call: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call(request)
        route = request.scope.get("route")
        latency.labels(getattr(route, "path", "unknown")).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(AmberError)
    async def amber_error(_: Request, exc: AmberError) -> JSONResponse:
        response = _error(exc.http_status, type(exc).__name__, exc.message)
        if exc.http_status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="amber"'
        return response

    @app.exception_handler(sa.exc.OperationalError)
    async def database_down(_: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        return _error(503, "ExternalError", database_failed(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/v1/"):  # the console's redirects and pages
            return await http_exception_handler(request, exc)
        response = _error(exc.status_code, "HTTPError", str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, "ValidationError", f"{where or 'request'}: {first.get('msg')}")

    app.state.engine = engine
    app.state.work = work  # the console's decisions take the same writer lock

    def decide(post_json: dict[str, Any], base: Path) -> dict[str, Any]:
        post = parse_post(post_json, base=base, source="request")
        with work:  # check and decide under one lock: concurrent repeats get one answer
            try:
                return engine.decisions.get(post.id).to_json()  # idempotent: same answer
            except NotFoundError:
                pass
            # Another worker process may be deciding the same post right now: the first
            # decision stored stands, and this request answers with it.
            result = engine.decide_post(post, replace=False)
        if not result.saved:
            return engine.decisions.get(post.id).to_json()
        decided.labels(result.outcome.verdict.value).inc()
        return result.to_json()

    @app.get("/v1/health", tags=["service"])
    def health(_: Ingest) -> dict[str, Any]:
        """The service is up; which worker process answered and how current its index is."""
        with work:
            engine.matcher.sync_if_stale()
        return {
            "status": "ok",
            "version": __version__,
            "worker": os.getpid(),
            "index": {"hashes": len(engine.matcher.index), "max_id": engine.matcher.index.max_id},
        }

    @app.get("/v1/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics(_: Admin) -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(registry).decode())

    @app.post("/v1/posts", tags=["posts"])
    def submit(post: PostIn, _: Ingest) -> dict[str, Any]:
        """Decide a post synchronously; the same post id always gets the same decision."""
        body = post.model_dump(exclude_none=True)
        if body.get("media") and media_root is None:
            raise UserError(
                "media by path need 'amber serve --media-root DIR'; or upload "
                "the files to /v1/posts/upload"
            )
        root = (media_root or Path(".")).resolve()
        for i, item in enumerate(body.get("media", [])):
            target = (root / str(item.get("path", ""))).resolve()
            if not target.is_relative_to(root):
                raise PostError(
                    "path leaves the media root", source="request", field=f"media[{i}].path"
                )
        return decide(body, root)

    @app.post("/v1/posts/upload", tags=["posts"])
    def upload(
        post: Annotated[str, Form(description="the post JSON")],
        _: Ingest,
        media: Annotated[list[UploadFile] | None, File()] = None,
    ) -> dict[str, Any]:
        """Decide a post whose media come in the request (multipart/form-data)."""
        try:
            body = json.loads(post)
        except json.JSONDecodeError as exc:
            raise PostError(f"invalid JSON: {exc.msg}", source="request", field="post") from None
        if not isinstance(body, dict):
            raise PostError("expected a JSON object", source="request", field="post")
        with tempfile.TemporaryDirectory(prefix="amber-upload-") as folder:
            names = []
            for i, upload_file in enumerate(media or []):
                name = f"{i}-{Path(upload_file.filename or 'media').name}"
                with (Path(folder) / name).open("wb") as out:
                    shutil.copyfileobj(upload_file.file, out)
                names.append({"path": name})
            body["media"] = names
            return decide(body, Path(folder))

    @app.post("/v1/posts/{post_id}/removal-order", tags=["posts"])
    def removal_order(post_id: str, _: Admin) -> dict[str, str]:
        """Register a removal order: the post goes to review with a one-hour deadline."""
        deadline = engine.decisions.removal_order(post_id, received_at=engine.clock())
        return {"post_id": post_id, "deadline": deadline.isoformat()}

    @app.get("/v1/decisions/{post_id}", tags=["posts"])
    def decision(post_id: str, _: Ingest) -> dict[str, Any]:
        """A stored decision, with where its human review stands (``review``: state and,
        once decided, the outcome, action, reviewer and time) so the platform can act."""
        stored = engine.decisions.get(post_id)
        review = engine.review.outcome(post_id)
        return {
            **stored.to_json(),
            "review": {
                "state": engine.review.item(post_id).state,
                **(
                    {}
                    if review is None
                    else {
                        "outcome": review.outcome.value,
                        "action": None if review.action is None else review.action.value,
                        "reviewer": review.reviewer,
                        "reason": review.reason,
                        "decided_at": review.decided_at.isoformat(),
                    }
                ),
            },
        }

    @app.get("/v1/banks", tags=["banks"])
    def banks(_: Admin) -> list[dict[str, Any]]:
        """Every bank."""
        return [_bank(b) for b in engine.banks.all()]

    @app.post("/v1/banks", tags=["banks"], status_code=201)
    def create_bank(bank: BankIn, _: Admin) -> dict[str, Any]:
        """Create a bank."""
        return _bank(
            engine.banks.create(
                bank.name, action=bank.action, label=bank.label, threshold=bank.threshold
            )
        )

    @app.get("/v1/banks/{name}", tags=["banks"])
    def get_bank(name: str, _: Admin) -> dict[str, Any]:
        """One bank."""
        return _bank(engine.banks.get(name))

    @app.patch("/v1/banks/{name}", tags=["banks"])
    def update_bank(name: str, patch: BankPatch, _: Admin) -> dict[str, Any]:
        """Change a bank's action, label or threshold."""
        return _bank(
            engine.banks.update(
                name, action=patch.action, label=patch.label, threshold=patch.threshold
            )
        )

    @app.delete("/v1/banks/{name}", tags=["banks"])
    def delete_bank(name: str, _: Admin) -> dict[str, Any]:
        """Delete a bank and its entries."""
        with work:
            removed = engine.banks.delete(name)
        return {"name": name, "entries_deleted": removed}

    @app.post("/v1/banks/{name}/entries", tags=["banks"])
    def add_entries(
        name: str, files: Annotated[list[UploadFile], File()], _: Admin
    ) -> dict[str, Any]:
        """Hash uploaded image files into a bank, one entry each."""
        with tempfile.TemporaryDirectory(prefix="amber-bank-") as folder:
            paths, sources = [], {}
            for i, upload_file in enumerate(files):
                original = Path(upload_file.filename or "file").name
                path = Path(folder) / f"{i}-{original}"
                with path.open("wb") as out:
                    shutil.copyfileobj(upload_file.file, out)
                paths.append(path)
                sources[str(path)] = original
            with work:
                result = engine.banks.add_files(name, paths, sources=sources)
        return {
            "added": len(result.added),
            "duplicates": len(result.duplicates),
            "failures": [{"file": Path(f.path).name, "reason": f.reason} for f in result.failures],
        }

    @app.post("/v1/banks/{name}/import", tags=["banks"])
    async def import_bank(name: str, request: Request, _: Admin) -> dict[str, int]:
        """Import CSV rows ``signal_type,signal[,label]`` (the request body), all or nothing."""
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(f"the CSV is not UTF-8 (byte {exc.start})") from None
        with work:
            result = engine.banks.import_csv(name, io.StringIO(text), source="request")
        return {"added": result.added, "duplicates": result.duplicates}

    @app.get("/v1/banks/{name}/export", tags=["banks"], response_class=PlainTextResponse)
    def export_bank(name: str, _: Admin) -> PlainTextResponse:
        """A bank as CSV rows ``signal_type,signal,label``."""
        out = io.StringIO()
        engine.banks.export_csv(name, out)
        return PlainTextResponse(out.getvalue(), media_type="text/csv")

    @app.get("/v1/review/queue", tags=["review"])
    def queue(_: Reviewer, limit: int = 50) -> list[dict[str, Any]]:
        """Items awaiting review, most urgent first."""
        return [_queue_item(i) for i in engine.review.items(limit=limit)]

    @app.post("/v1/review/next", tags=["review"])
    def next_item(token: Reviewer) -> dict[str, Any] | None:
        """Lock and return the most urgent item nobody else holds (null when none)."""
        item = engine.review.next(token.name)
        return None if item is None else _queue_item(item)

    @app.post("/v1/review/{post_id}/lock", tags=["review"])
    def lock(post_id: str, token: Reviewer) -> dict[str, str]:
        """Take or renew the exclusive lock on an item."""
        return {
            "post_id": post_id,
            "expires_at": engine.review.lock(post_id, token.name).isoformat(),
        }

    @app.delete("/v1/review/{post_id}/lock", tags=["review"])
    def unlock(post_id: str, token: Reviewer) -> dict[str, str]:
        """Give an item back."""
        engine.review.unlock(post_id, token.name)
        return {"post_id": post_id}

    @app.post("/v1/review/{post_id}/decision", tags=["review"])
    def review_decision(post_id: str, body: ReviewIn, token: Reviewer) -> dict[str, Any]:
        """Confirm (remove / keep_restricted, optionally into a bank), reject or escalate."""
        with work:
            done = engine.review.decide(
                post_id,
                token.name,
                body.outcome,
                reason=body.reason,
                action=body.action,
                bank=body.bank,
            )
        return {
            "post_id": done.post_id,
            "outcome": done.outcome.value,
            "action": None if done.action is None else done.action.value,
            "reviewer": done.reviewer,
            "decided_at": done.decided_at.isoformat(),
        }

    @app.get("/v1/evidence", tags=["evidence"])
    def evidence(_: Admin) -> list[dict[str, Any]]:
        """What the vault holds."""
        if not (engine.vault_path / "vault.json").exists():
            return []
        return [
            {
                "post_id": i.post_id,
                "verdict": i.verdict,
                "hold": i.hold,
                "deleted": i.deleted,
                "retain_until": i.retain_until.isoformat(),
                "objects": i.objects,
            }
            for i in engine.open_vault().items().values()
        ]

    @app.get("/v1/evidence/{post_id}/bag", tags=["evidence"], response_class=Response)
    def evidence_bag(post_id: str, token: Admin) -> Response:
        """The post's evidence bag as a zip (BagIt 1.0 inside); the export is logged."""
        with tempfile.TemporaryDirectory(prefix="amber-bag-") as folder:
            bag = export_bag(
                engine.open_vault(),
                post_id,
                Path(folder) / f"bag-{post_id}",
                actor=f"{token.name} via amber serve",
            )
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(bag.rglob("*")):
                    if file.is_file():
                        archive.write(file, file.relative_to(bag.parent))
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="bag-{post_id}.zip"'},
        )

    app.include_router(console.router)
    app.add_middleware(BodyLimit, limit=max_body)
    return app


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message, "status": status}}, status_code=status
    )


def _bank(bank: Any) -> dict[str, Any]:
    return {
        "name": bank.name,
        "label": bank.label,
        "action": bank.action.value,
        "threshold": bank.threshold,
        "entries": bank.entries,
        "created_at": bank.created_at.isoformat(),
    }


def _queue_item(item: Any) -> dict[str, Any]:
    return {
        "post_id": item.post_id,
        "verdict": item.verdict,
        "deadline": None if item.deadline is None else item.deadline.isoformat(),
        "threat_to_life": item.threat_to_life,
        "author": item.author,
        "reasons": item.reasons,
        "actions": item.actions,
        "post": json.loads(item.post),
        "locked_by": item.locked_by,
    }
