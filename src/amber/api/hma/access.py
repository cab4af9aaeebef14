"""Who may use HMA's routes: the Bearer token holding the scope a route needs, or no token
when the server lets anonymous requests in (``HmaSettings.anonymous``); and whether the
server serves the route's role at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from amber.api.banks import actor
from amber.api.deps import bearer, require
from amber.api.hma import HmaRole, HmaSettings, settings
from amber.errors import NotFoundError, PermissionDeniedError
from amber.tokens import Scope

#: Who changed a bank through HMA's routes without a token, in the bank's audit.
ANONYMOUS = "anonymous"


def admit(scope: Scope, role: HmaRole) -> Callable[..., str]:
    """A dependency that admits a request to a route of HMA's ``role``: with a token
    holding ``scope`` (or ``admin``), or without a token when anonymous requests are let
    in. Returns who is acting, for the bank's audit (``token:NAME`` or ``anonymous``).

    Raises ``NotFoundError`` (404) when the server does not serve ``role``,
    ``AuthenticationError`` (401) without a live token, ``PermissionDeniedError`` (403)
    without the scope.
    """
    check_token = require(scope)

    def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(  # noqa: B008
            bearer, scopes=[scope.value]
        ),
    ) -> str:
        served = settings(request)
        if role not in served.roles:
            raise NotFoundError(f"this server does not serve HMA's {role.value} routes")
        if credentials is None and served.anonymous:
            return ANONYMOUS
        return actor(check_token(request, credentials))

    return check


def require_role(served: HmaSettings, role: HmaRole, what: str) -> None:
    """Refuse ``what`` (403) when the server does not serve ``role`` (the matcher hashing
    a URL or a file needs the hasher)."""
    if role not in served.roles:
        raise PermissionDeniedError(
            f"{what} is disabled on this server: it lacks HMA's {role.value} role"
        )


Hasher = Annotated[str, Depends(admit(Scope.ingest, HmaRole.hasher))]
Matcher = Annotated[str, Depends(admit(Scope.ingest, HmaRole.matcher))]
Curator = Annotated[str, Depends(admit(Scope.admin, HmaRole.curator))]
