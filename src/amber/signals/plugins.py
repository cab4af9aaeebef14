"""Third-party signal types, loaded from the entry-point group ``amber.signal_types``.

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."amber.signal_types"]
    meanrgb = "amber_meanrgb:MeanRgbSignal"

The entry point's name is the type's ``name``; its object is a ``SignalType`` subclass
(built without arguments) or a ready instance. Plug-ins are loaded when the engine is
built (``open_engine``), never at import, and registered exactly as built-ins are.
"""

from __future__ import annotations

import pickle
import re

from amber.errors import UserError
from amber.signals.base import Reads, SignalType
from amber.signals.registry import Registry

GROUP = "amber.signal_types"
#: A signal type name: a storage key (``entry_signals.signal_type`` is 40 characters).
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def register_plugins(registry: Registry[SignalType]) -> None:
    """Load every installed signal-type plug-in into ``registry``, as conditions and
    actions are loaded (``Registry.register_entry_points``).

    Raises ``UserError`` naming the entry point when one fails to load or is not a
    usable signal type, ``ConflictError`` when its name is already registered.
    """
    registry.register_entry_points(GROUP, _signal_type)


def _signal_type(loaded: object) -> SignalType:
    """The signal type a loaded entry point gives (a subclass is built without
    arguments). Raises ``UserError`` saying what is wrong with it."""
    try:
        item = loaded() if isinstance(loaded, type) and issubclass(loaded, SignalType) else loaded
    except Exception as exc:  # a plug-in's constructor may fail any way; say how
        name = getattr(loaded, "__name__", repr(loaded))
        raise UserError(f"building {name}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(item, SignalType):
        raise UserError(f"gives {item!r}, not an amber.signals.SignalType subclass or instance")
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(
            f"name {name!r} is not 1-40 lowercase letters, digits or '_' starting with a letter"
        )
    version = getattr(item, "version", None)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"version {version!r} is not an int >= 1")
    if not isinstance(item.reads, Reads):
        raise UserError(f"reads {item.reads!r} is not a Reads (media or post)")
    if item.reads is Reads.media:
        try:
            pickle.dumps(item)
        except Exception as exc:
            raise UserError(
                "the type cannot be sent to the hashing worker processes "
                f"({type(exc).__name__}: {exc}); keep its attributes plain data or "
                "module-level functions"
            ) from exc
    return item
