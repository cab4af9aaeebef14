"""HMA's index cache, which its status tests fake: amber's ``/status`` asks the app's
index-state provider, and each app made by the stand-in gets ``index_state`` here, which
reads ``_get_index_cache()`` (empty unless a test replaces it) as HMA's ``/status`` does."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from amber.api.hma.status import IndexState
from amber.engine import Engine


class MatchWithDistance(TypedDict):
    bank_content_id: int
    distance: str


TMatchByBank = dict[str, list[MatchWithDistance]]


@dataclass
class _SignalIndexInMemoryCache:
    """One signal type's loaded index, as HMA's matcher caches it."""

    signal_type: Any
    index: Any
    checkpoint: Any
    last_check_ts: float
    sec_old_before_stale: int

    @property
    def is_ready(self) -> bool:
        return self.last_check_ts > 0

    @property
    def is_stale(self) -> bool:
        limit = self.sec_old_before_stale
        return limit > 0 and time.time() - self.last_check_ts > limit


IndexCache = Mapping[str, _SignalIndexInMemoryCache]


def _get_index_cache() -> IndexCache:
    """No cache: amber loads its indexes with the engine."""
    return {}


def index_state(engine: Engine) -> IndexState:
    """The state ``/status`` reports: from the (possibly faked) cache when there is one."""
    cache = _get_index_cache()
    if any(not entry.is_ready for entry in cache.values()):
        return IndexState.not_loaded
    if any(entry.is_stale for entry in cache.values()):
        return IndexState.stale
    return IndexState.ready
