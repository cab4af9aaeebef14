"""ASGI middleware of the API: a request body limit, refusing NUL characters in the URL,
security headers (CSP, anti-framing) on the console and docs pages, and the access log
with latency.

The access log is one JSON object per request on the ``amber.access`` logger::

    {"method": "POST", "path": "/v1/posts", "status": 200, "duration_ms": 12.3,
     "token": "ingest", "client": "127.0.0.1"}

(``token`` is the name of the Bearer token the request authenticated with, or null).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amber.api import hma
from amber.api.metrics import Metrics

access = logging.getLogger("amber.access")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether the client declared the
    size (``content-length``) or streams the body in chunks: the 413 goes out as soon as
    the limit is passed, and the app is told the client went away."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit, scope["path"])
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                refused = True
                if not started:
                    await _too_large(send, self.limit, scope["path"])
                return {"type": "http.disconnect"}  # the app stops reading and gives up
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app answers is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise


class NoNul:
    """Refuse a request whose path or query string holds a NUL character with 400: no file
    system, and no PostgreSQL text, can take one, so nothing further may see it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote_to_bytes(scope.get("query_string", b""))
            where = "path" if "\x00" in scope["path"] else "query" if b"\x00" in query else None
            if where is not None:
                await _refuse(
                    send,
                    400,
                    "BadRequest",
                    f"the request {where} contains a NUL character (%00)",
                    scope["path"],
                )
                return
        await self.app(scope, receive, send)


#: The console's pages: its own scripts, styles, images and media only; never in a frame.
CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: Swagger UI and ReDoc: their bundles from this app; the one inline script of each page
#: is allowed by its hash (added per page); their styles are set inline by the bundles.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


class SecurityHeaders:
    """Content-Security-Policy and anti-framing headers on the console and the docs pages;
    ``nosniff`` and a same-origin referrer on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = path.startswith("/console") or path in DOCS_PAGES
        start: Message | None = None
        body = bytearray()

        async def headed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                if path in DOCS_PAGES:
                    return  # held until the body is known: its inline script is hashed
                await send(_with_headers(message, page, CONSOLE_POLICY))
                return
            if path in DOCS_PAGES and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                policy = DOCS_POLICY.format(hashes=_script_hashes(bytes(body)))
                await send(_with_headers(start, page, policy))
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, headed)


def _with_headers(start: Message, page: bool, policy: str) -> Message:
    headers = [
        (k, v)
        for k, v in start.get("headers", [])
        if k.lower()
        not in (
            b"x-content-type-options",
            b"referrer-policy",
            b"content-security-policy",
            b"x-frame-options",
        )
    ]
    headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
    if page:
        headers += [(b"content-security-policy", policy.encode()), (b"x-frame-options", b"DENY")]
    return {**start, "headers": headers}


def _script_hashes(page: bytes) -> str:
    """`` 'sha256-...'`` for each inline script of an HTML page."""
    scripts = re.findall(rb"<script>(.*?)</script>", page, flags=re.DOTALL)
    return "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts
    )


async def _too_large(send: Send, limit: int, path: str) -> None:
    await _refuse(send, 413, "PayloadTooLarge", f"request body over {limit} bytes", path)


async def _refuse(send: Send, status: int, kind: str, message: str, path: str) -> None:
    """Answer ``status`` with amber's error body, or HMA's on HMA's routes."""
    error = (
        {"message": message}
        if hma.serves(path)
        else {"error": {"type": kind, "status": status, "message": message}}
    )
    body = json.dumps(error).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """Log every HTTP request on ``amber.access`` and time it for ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unknown")
            self.metrics.latency.labels(route).observe(seconds)
            client = scope.get("client")
            record = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "token": (scope.get("state") or {}).get("token"),
                "client": None if client is None else client[0],
            }
            access.info(json.dumps(record))


def log_access_to_stderr() -> None:
    """Write the access log to stderr, unless the application configured logging itself
    (a handler on the root logger or on ``amber.access``): ``amber serve`` does this."""
    if access.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
