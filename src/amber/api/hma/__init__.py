"""HMA's API beside ``/v1``: the routes of Meta's Hasher-Matcher-Actioner (HMA, "Open
Media Match") with its request and response shapes, over amber's banks and matcher
(``amber.hma`` holds the translation; docs/hma.md lists the routes).

- ``/h/hash`` (HMA's hasher), ``/m/...`` (its matcher), ``/c/...`` (its curator),
  ``/status`` and ``/status/live``, and ``/openapi/openapi.json``: this face's own
  description, titled as HMA's ("Open Media Match API").
- Tokens: HMA has none; amber asks the same Bearer tokens as ``/v1``. The curator's routes
  change banks and need ``admin`` (as ``/v1/banks``); the hasher's and the matcher's only
  read and need ``ingest`` (as a post's lookup); ``/status``, ``/status/live`` and the
  description need none (as ``/v1/live``). With ``anonymous`` (``amber serve
  --hma-anonymous``, for a trusted network as HMA assumes) a request without a token may
  use these routes, and only these; a token that is given is still checked.
- Errors have HMA's body, ``{"message": "..."}``, and HMA's statuses where they differ from
  amber's: a bank name that is taken is 403, a malformed request 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from amber.errors import AmberError, ConflictError


class HmaRole(StrEnum):
    """HMA's roles, each a group of routes a server may serve (HMA's ``ROLE_*``)."""

    hasher = "hasher"
    matcher = "matcher"
    curator = "curator"


@dataclass(frozen=True, slots=True)
class HmaSettings:
    """How a server serves HMA's routes (``app.state.hma``; ``amber serve --hma-*``)."""

    #: Requests without a token may use HMA's routes (a trusted network, as HMA assumes).
    anonymous: bool = False
    #: The roles served: a role left out answers 404 on its routes, and the matcher does
    #: not hash a URL or a file without the hasher (403), as HMA's ``ROLE_*``.
    roles: frozenset[HmaRole] = field(default_factory=lambda: frozenset(HmaRole))
    #: Only these host names are fetched, when any are given (HMA's ``ALLOWED_HOSTNAMES``).
    allowed_hosts: frozenset[str] = frozenset()
    #: Largest content fetched from a URL, in bytes (HMA's ``MAX_REMOTE_FILE_SIZE``);
    #: ``None``: ``amber.fetch``'s default, the media limit.
    max_fetch_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The settings as ``amber serve --workers N`` hands them to each worker."""
        return {
            "anonymous": self.anonymous,
            "roles": sorted(self.roles),
            "allowed_hosts": sorted(self.allowed_hosts),
            "max_fetch_bytes": self.max_fetch_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HmaSettings:
        """The settings ``to_json`` wrote."""
        return cls(
            anonymous=bool(data.get("anonymous", False)),
            roles=frozenset(HmaRole(r) for r in data.get("roles", list(HmaRole))),
            allowed_hosts=frozenset(data.get("allowed_hosts", ())),
            max_fetch_bytes=data.get("max_fetch_bytes"),
        )


#: The paths of HMA's face (besides ``/status`` and ``/status/live``).
PREFIXES = ("/h/", "/m/", "/c/", "/openapi/")
STATUS_PATHS = ("/status", "/status/live")
#: The title of this face's description: HMA's, which its clients look for.
TITLE = "Open Media Match API"


class HmaError(BaseModel):
    """HMA's error body: what was wrong, and what to do."""

    message: str


#: What each error status of HMA's routes means.
ERROR_STATUSES = {
    400: "Bad request: a value was wrong or missing (the message names it)",
    401: "No live token (missing, malformed, revoked or expired) where one is needed",
    403: "The token lacks the scope; a bank name that is taken; hashing without the hasher role",
    404: "Not found: the bank or content named, or a role this server does not serve",
    413: "Request body over the server's --max-body, or a URL's content over the fetch limit",
    500: "A setting of the service is wrong (the message and the log say which)",
    502: "A URL to hash could not be fetched",
    503: "The database cannot serve now; send the request again later",
    504: "Fetching a URL to hash took longer than its limit",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an HMA route behind a token: 400, 401, 403, 404 and 503, and
    ``statuses``, each with HMA's error body."""
    return {
        status: {"model": HmaError, "description": ERROR_STATUSES[status]}
        for status in sorted({400, 401, 403, 404, 503, *statuses})
    }


def settings(request: Request) -> HmaSettings:
    """The HMA settings of the app serving ``request`` (``app.state.hma``)."""
    found: HmaSettings = getattr(request.app.state, "hma", None) or HmaSettings()
    return found


def mount(app: FastAPI) -> None:
    """Serve HMA's routes on ``app``, outside its own OpenAPI description (they have
    their own, ``/openapi/openapi.json``, and HMA's error body)."""
    for router in routers():
        app.include_router(router, include_in_schema=False)


def serves(path: str) -> bool:
    """Is ``path`` one of HMA's routes (whose errors have HMA's body)?"""
    return path in STATUS_PATHS or path.startswith(PREFIXES)


def error_status(exc: AmberError) -> int:
    """The HTTP status HMA answers ``exc`` with: amber's, except 403 for a name that is
    taken (HMA's "Bank already exists")."""
    return 403 if isinstance(exc, ConflictError) else exc.http_status


def error(status: int, message: str) -> JSONResponse:
    """HMA's error body: ``{"message": "..."}``."""
    return JSONResponse({"message": message}, status_code=status)


def routers() -> tuple[APIRouter, ...]:
    """HMA's routers, in the order they are mounted."""
    from amber.api.hma import curation, exchanges, hashing, matching, status

    return (status.router, hashing.router, matching.router, curation.router, exchanges.router)
