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
from importlib.metadata import EntryPoint, entry_points

from amber.errors import ConflictError, UserError
from amber.signals.base import Scope, SignalType
from amber.signals.registry import Registry

GROUP = "amber.signal_types"
#: A signal type name: a storage key (``entry_signals.signal_type`` is 40 characters).
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def plugin_entry_points() -> list[EntryPoint]:
    """The installed ``amber.signal_types`` entry points, by name."""
    return sorted(entry_points(group=GROUP), key=lambda ep: (ep.name, ep.value))


def register_plugins(registry: Registry[SignalType]) -> None:
    """Load every installed signal-type plug-in into ``registry``.

    Raises ``UserError`` naming the entry point when one fails to load or is not a
    usable signal type, ``ConflictError`` when its name is already registered.
    """
    for ep in plugin_entry_points():
        signal_type = load_plugin(ep)
        if signal_type.name in registry:
            raise ConflictError(
                f"signal type {signal_type.name!r} from plug-in {_describe(ep)} is already "
                "registered (by amber or another plug-in); uninstall one of them"
            )
        registry.register(signal_type)


def load_plugin(ep: EntryPoint) -> SignalType:
    """The signal type an entry point names. Raises ``UserError`` naming the entry point."""
    where = _describe(ep)
    try:
        loaded = ep.load()
    except Exception as exc:  # a plug-in's import may fail any way; say which one
        raise UserError(
            f"signal-type plug-in {where} failed to load: {type(exc).__name__}: {exc}; "
            "fix or uninstall that package"
        ) from exc
    try:
        item = loaded() if isinstance(loaded, type) and issubclass(loaded, SignalType) else loaded
    except Exception as exc:
        raise UserError(
            f"signal-type plug-in {where}: building {loaded.__name__}() failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(item, SignalType):
        raise UserError(
            f"signal-type plug-in {where} gives {item!r}, not an amber.signals.SignalType "
            "subclass or instance"
        )
    _check(item, ep, where)
    return item


def _check(item: SignalType, ep: EntryPoint, where: str) -> None:
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(
            f"signal-type plug-in {where}: name {name!r} is not 1-40 lowercase letters, "
            "digits or '_' starting with a letter"
        )
    if name != ep.name:
        raise UserError(
            f"signal-type plug-in {where}: the entry point is called {ep.name!r} but the "
            f"type's name is {name!r}; name the entry point after the type"
        )
    version = getattr(item, "version", None)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"signal-type plug-in {where}: version {version!r} is not an int >= 1")
    if not isinstance(item.scope, Scope):
        raise UserError(f"signal-type plug-in {where}: scope {item.scope!r} is not a Scope")
    if item.scope is Scope.media:
        try:
            pickle.dumps(item)
        except Exception as exc:
            raise UserError(
                f"signal-type plug-in {where}: the type cannot be sent to the hashing worker "
                f"processes ({type(exc).__name__}: {exc}); keep its attributes plain data "
                "or module-level functions"
            ) from exc


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f" (from {dist.name} {dist.version})" if dist is not None else ""
    return f"'{ep.name} = {ep.value}'{origin}"
