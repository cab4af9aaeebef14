"""The registry of signal types is amber's generic one (``amber.registry``), kept importable
from here."""

from __future__ import annotations

from amber.registry import Named, Registry

__all__ = ["Named", "Registry"]
