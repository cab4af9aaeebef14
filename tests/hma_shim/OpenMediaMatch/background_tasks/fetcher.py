"""``fetch_all``: fetch every enabled exchange into its bank, through amber's exchanges."""

from __future__ import annotations

from typing import Any


def fetch_all(storage: Any, signal_type_configs: Any = None) -> None:
    """Fetch each enabled exchange of the current app (``amber.exchanges``)."""
    raise NotImplementedError("amber's exchanges are not there yet")
