"""What every router needs: the engine of the app that serves the request, and the
Bearer token holding the scope a route needs (``admin`` may do everything)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


def require(scope: Scope) -> Callable[..., Token]:
    """A dependency that admits a Bearer token holding ``scope`` (or ``admin``).

    Raises ``AuthenticationError`` (401) without a live token, ``PermissionDeniedError``
    (403) without the scope. The token's name goes in the access log.
    """

    def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(  # noqa: B008
            bearer, scopes=[scope.value]
        ),
    ) -> Token:
        secret = None if credentials is None else credentials.credentials.strip()
        token = get_engine(request).tokens.authenticate(secret)
        request.state.token = token.name
        if scope not in token.scopes and Scope.admin not in token.scopes:
            raise PermissionDeniedError(
                f"token {token.name!r} lacks the {scope.value!r} scope this needs"
            )
        return token

    return check


EngineDep = Annotated[Engine, Depends(get_engine)]
Ingest = Annotated[Token, Depends(require(Scope.ingest))]
Reviewer = Annotated[Token, Depends(require(Scope.review))]
Admin = Annotated[Token, Depends(require(Scope.admin))]


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
