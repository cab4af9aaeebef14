"""What every router needs: the engine of the app that serves the request, the Bearer
token holding the scope a route needs (``admin`` may do everything), and the error
responses a route documents (``errors``), in amber's one error body (``Error``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from amber.engine import Engine
from amber.errors import PermissionDeniedError, UserError
from amber.tokens import Scope, Token


def get_engine(request: Request) -> Engine:
    """The engine ``create_app`` was given (``app.state.engine``)."""
    engine: Engine = request.app.state.engine
    return engine


#: In the OpenAPI description: every route names the token scope it needs.
bearer = HTTPBearer(
    auto_error=False,  # amber's own 401 and error body, below
    description="An amber token (`amber token create NAME --scopes ...`).",
)


def require(scope: Scope, *others: Scope) -> Callable[..., Token]:
    """A dependency that admits a Bearer token holding ``scope`` or one of ``others`` (or
    ``admin``).

    Raises ``AuthenticationError`` (401) without a live token, ``PermissionDeniedError``
    (403) without the scope. The token's name goes in the access log.
    """
    wanted = (scope, *others)

    def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(  # noqa: B008
            bearer, scopes=[s.value for s in wanted]
        ),
    ) -> Token:
        secret = None if credentials is None else credentials.credentials.strip()
        token = get_engine(request).tokens.authenticate(secret)
        request.state.token = token.name
        if not token.scopes & {*wanted, Scope.admin}:
            named = " or ".join(repr(s.value) for s in wanted)
            raise PermissionDeniedError(f"token {token.name!r} lacks the {named} scope this needs")
        return token

    return check


class ErrorDetail(BaseModel):
    """What went wrong: the error's class (``NotFoundError``, ``ValidationError``, ...),
    a message saying what and what to do, and the HTTP status again."""

    type: str
    message: str
    status: int


class Error(BaseModel):
    """The one body of every error response of ``/v1``."""

    error: ErrorDetail


#: What each error status means, wherever a route can answer it.
ERROR_STATUSES = {
    400: "Bad request: a value was wrong (the message names it), or a NUL in the path or query",
    401: "No live token (missing, malformed, revoked or expired)",
    403: "The token lacks the scope this route needs",
    404: "Not found: the post, bank, review item or evidence named does not exist",
    409: "Conflict with what is stored (the message says which)",
    413: "Request body over the server's --max-body (declared or sent chunked)",
    422: "Malformed request: a parameter or field of the wrong type or out of range",
    429: "The reviewer holds the most review locks allowed (AMBER_REVIEW_MAX_LOCKS)",
    502: "A system outside amber failed (an exchange's source); the message says which",
    503: "The database or the evidence vault cannot serve now; send the request again later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route behind a token: 401, 403 and 503 (the token is looked
    up in the database), and ``statuses``, each with the ``Error`` body. A route with
    parameters or a body names 422 too, so its 422 is documented with ``Error`` (the
    body amber sends) rather than FastAPI's ``HTTPValidationError``."""
    return {
        status: {"model": Error, "description": ERROR_STATUSES[status]}
        for status in sorted({401, 403, 503, *statuses})
    }


def ok_as(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry for a 200 that is not JSON (the route's
    ``response_class=Response`` leaves its content to this, and its errors stay JSON)."""
    schema = (
        {"type": "string"}
        if media_type.startswith("text/")
        else {
            "type": "string",
            "format": "binary",
        }
    )
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


EngineDep = Annotated[Engine, Depends(get_engine)]
Ingest = Annotated[Token, Depends(require(Scope.ingest))]
Reviewer = Annotated[Token, Depends(require(Scope.review))]
Admin = Annotated[Token, Depends(require(Scope.admin))]
#: The platform (``ingest``: its own posts) or a reviewer (``review``: every post).
IngestOrReviewer = Annotated[Token, Depends(require(Scope.ingest, Scope.review))]


#: The longest upload file name kept, in UTF-8 bytes (file systems allow 255 per name).
MAX_UPLOAD_NAME = 200


def upload_name(filename: str | None, *, field: str, default: str) -> str:
    """The last part of an uploaded file's name, safe to create in a private folder.

    Raises ``UserError`` naming ``field`` for a NUL or a name too long for a file system.
    """
    name = filename or default
    if "\x00" in name:
        raise UserError(f"{field}: the file name contains a NUL character (\\u0000)")
    name = PurePosixPath(PureWindowsPath(name).name).name or default
    if name in (".", ".."):
        name = default
    if len(name.encode("utf-8", "surrogatepass")) > MAX_UPLOAD_NAME:
        raise UserError(
            f"{field}: the file name is {len(name.encode('utf-8', 'surrogatepass'))} bytes "
            f"long; at most {MAX_UPLOAD_NAME} are allowed"
        )
    return name
