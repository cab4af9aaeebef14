"""amber's one exception tree.

``AmberError`` is the root. Each class carries the CLI exit code and the HTTP status
that the command line and the API map it to, so no caller decides those twice.

- ``UserError`` (exit 2, HTTP 400): something the user gave was wrong; the message says
  what, quotes the value and says what to do.
- ``ExternalError`` (exit 3, HTTP 502): something outside amber failed (a database
  server, a remote endpoint).
  ``UnavailableError`` (HTTP 503) when it cannot serve now but may later.
- ``InternalError`` (exit 1, HTTP 500): a bug in amber.
"""

from __future__ import annotations

from pathlib import Path


class AmberError(Exception):
    """Root of every error amber raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(AmberError):
    """Input, arguments or configuration were wrong."""

    exit_code = 2
    http_status = 400


class NotFoundError(UserError):
    """A named thing (bank, post, entry) does not exist."""

    http_status = 404


class AuthenticationError(UserError):
    """No valid credentials were given."""

    http_status = 401


class PermissionDeniedError(UserError):
    """Valid credentials without the scope the operation needs."""

    http_status = 403


class ConflictError(UserError):
    """The request contradicts what is stored (duplicate name, and so on)."""

    http_status = 409


class ExternalError(AmberError):
    """A system outside amber failed."""

    exit_code = 3
    http_status = 502


class UnavailableError(ExternalError):
    """Something amber needs cannot serve now (its database); HTTP 503, exit 3."""

    http_status = 503


class DatabaseGoneError(UnavailableError):
    """The SQLite file amber opened was removed or replaced while amber ran."""


class InternalError(AmberError):
    """amber broke its own rules: a bug to report."""


class PostError(UserError):
    """One post in an input could not be used; ``line`` and ``field`` say where."""

    def __init__(
        self, message: str, *, source: str, line: int | None = None, field: str | None = None
    ) -> None:
        where = source if line is None else f"{source} line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.source = source
        self.line = line
        self.field = field


class MediaError(UserError):
    """A media file could not be read or decoded within the limits."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.reason = message
        self.path = None if path is None else str(path)


class SignalValueError(UserError):
    """A signal value (a hash given as text) is not valid for its signal type."""

    def __init__(self, message: str, *, signal_type: str, value: str) -> None:
        super().__init__(f"{signal_type} value {value!r}: {message}")
        self.reason = message
        self.signal_type = signal_type
        self.value = value


class PolicyError(UserError):
    """A policy file is malformed; ``path`` and ``key`` say where."""

    def __init__(self, message: str, *, path: str, key: str | None = None) -> None:
        where = path if key is None else f"{path}, key '{key}'"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.key = key


class MissingExtraError(UserError):
    """An optional package that this use of amber needs is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the {package!r} package, which amber installs with its {extra!r} "
            f"extra: pip install 'amber[{extra}]'"
        )
        self.package = package
        self.extra = extra

    @classmethod
    def check(cls, exc: ModuleNotFoundError, packages: frozenset[str], extra: str) -> None:
        """Raise the error for ``exc`` if the missing module is one of ``packages`` (top
        level names) that ``extra`` installs; return otherwise (then ``exc`` is a bug)."""
        top = (exc.name or "").split(".")[0]
        if top in packages:
            raise cls(top, extra) from None
