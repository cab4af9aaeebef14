"""amber: a trust-and-safety engine for interactive-atrocity posts.

The public API, for use as a library (``docs/library.md``)::

    from amber import open_engine, read_input

Names are imported on first use (PEP 562), so ``import amber`` stays cheap: the engine
pulls in SQLAlchemy, numpy and Pillow, which the command line's ``--help`` never needs.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("amber")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from amber.engine import Engine, ScanResult, open_engine
    from amber.errors import (
        AmberError,
        AuthenticationError,
        ConflictError,
        ExternalError,
        InternalError,
        MediaError,
        NotFoundError,
        PermissionDeniedError,
        PolicyError,
        PostError,
        SignalValueError,
        UserError,
    )
    from amber.posts import Post, read_input

#: Each public name and the module that defines it.
_LAZY = {
    "open_engine": "amber.engine",
    "Engine": "amber.engine",
    "ScanResult": "amber.engine",
    "Post": "amber.posts",
    "read_input": "amber.posts",
    "AmberError": "amber.errors",
    "UserError": "amber.errors",
    "NotFoundError": "amber.errors",
    "AuthenticationError": "amber.errors",
    "PermissionDeniedError": "amber.errors",
    "ConflictError": "amber.errors",
    "PostError": "amber.errors",
    "MediaError": "amber.errors",
    "SignalValueError": "amber.errors",
    "PolicyError": "amber.errors",
    "ExternalError": "amber.errors",
    "InternalError": "amber.errors",
}

__all__ = [
    "AmberError",
    "AuthenticationError",
    "ConflictError",
    "Engine",
    "ExternalError",
    "InternalError",
    "MediaError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "Post",
    "PostError",
    "ScanResult",
    "SignalValueError",
    "UserError",
    "__version__",
    "open_engine",
    "read_input",
]


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use, then keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amber' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
