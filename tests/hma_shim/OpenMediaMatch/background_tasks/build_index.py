"""``build_all_indices``: amber's matcher brings its indexes up to date (``Matcher.sync``);
it does so before every lookup anyway, so this only marks the first build for HMA's
``get_signal_type_index``."""

from __future__ import annotations

from typing import Any


def build_all_indices(*stores: Any) -> None:
    storage = stores[0]
    with storage.engine.write_lock:
        storage.engine.matcher.sync()
    storage.app.indexed = True
