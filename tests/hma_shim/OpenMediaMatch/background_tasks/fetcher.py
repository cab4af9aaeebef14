"""``fetch_all``: fetch every enabled exchange into its bank (``ExchangeStore.fetch_all``,
as ``amber exchange fetch`` does)."""

from __future__ import annotations

from typing import Any


def fetch_all(storage: Any, signal_type_configs: Any = None) -> None:
    """Fetch each enabled exchange of the storage's app; a failed fetch is an error here
    (HMA logs it; its tests then find nothing)."""
    for result in storage.engine.exchanges.fetch_all():
        if not result.succeeded:
            raise RuntimeError(f"exchange {result.exchange} failed: {result.to_json()}")
