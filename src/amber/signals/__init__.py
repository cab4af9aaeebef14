"""Signal types: one module per type, collected in a registry when the engine is built."""

from __future__ import annotations

from amber.signals.base import Content, Role, SignalType, SignalValue
from amber.signals.registry import Registry

__all__ = [
    "Content",
    "Registry",
    "Role",
    "SignalType",
    "SignalValue",
    "default_signal_types",
    "load_signal_types",
]


def default_signal_types() -> Registry[SignalType]:
    """The built-in signal types, registered the way a plug-in would register its own."""
    from amber import image_views
    from amber.signals.crypto import Md5Signal, Sha256Signal
    from amber.signals.harm_poll import HarmPollSignal
    from amber.signals.local import OrbSignal
    from amber.signals.pdq import PdqSignal
    from amber.signals.vpdq import VpdqSignal

    registry: Registry[SignalType] = Registry("signal type")
    registry.register(Sha256Signal())
    registry.register(Md5Signal())
    registry.register(
        PdqSignal(query_views=image_views.query_views, bank_views=image_views.bank_views)
    )
    registry.register(VpdqSignal())
    registry.register(OrbSignal())
    registry.register(HarmPollSignal())
    return registry


def load_signal_types() -> Registry[SignalType]:
    """The built-in signal types, then those of installed plug-ins (entry-point group
    ``amber.signal_types``), in one registry.

    Raises ``UserError`` naming a plug-in that fails to load, ``ConflictError`` for a
    plug-in whose name is taken.
    """
    from amber.signals.plugins import register_plugins

    registry = default_signal_types()
    register_plugins(registry)
    return registry
