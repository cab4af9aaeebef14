"""``get_storage``: HMA's storage interface, each call made through amber's library on the
current app's engine (``amber.banks`` through ``amber.hma``, the matcher, the exchanges)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType
from threatexchange.storage.interfaces import BankConfig

from amber import hma
from OpenMediaMatch.app import App, current_app

#: python-threatexchange's classes of HMA's signal types (their examples, their names).
SIGNAL_CLASSES: Mapping[str, type[SignalType]] = {
    cls.get_name(): cls for cls in (PdqSignal, VideoMD5Signal)
}


@dataclass
class SignalTypeConfig:
    """HMA's configuration of one signal type: all of amber's HMA types are enabled."""

    enabled_ratio: float
    signal_type: type[SignalType]

    @property
    def enabled(self) -> bool:
        return self.enabled_ratio >= 0.0


class Storage:
    """HMA's storage calls that its tests make, over amber's library."""

    def __init__(self, app: App) -> None:
        self.app = app

    @property
    def engine(self) -> Any:
        return self.app.engine

    def get_signal_type_configs(self) -> dict[str, SignalTypeConfig]:
        """amber's HMA signal types (``amber.hma.SIGNAL_TYPES``), all enabled."""
        return {name: SignalTypeConfig(1.0, SIGNAL_CLASSES[name]) for name in hma.SIGNAL_TYPES}

    def get_signal_type_index(self, signal_type: type[SignalType]) -> Any:
        """The index amber matches ``signal_type`` with; ``None`` before the first build,
        as HMA's (amber keeps its indexes current without one)."""
        if not self.app.indexed:
            return None
        kind = hma.amber_signal_type(signal_type.get_name())
        indexes = self.engine.matcher.indexes
        owner = next(
            (o for o, members in self.engine.matcher.members.items() if kind in members), kind
        )
        return indexes.get(owner)

    def get_banks(self) -> dict[str, BankConfig]:
        return {b.name: BankConfig(b.name, b.enabled_ratio) for b in self.engine.banks.all()}

    def bank_update(
        self, bank: BankConfig, *, create: bool = False, rename_from: str | None = None
    ) -> None:
        """Create a bank (``amber.hma.create_bank``) or change one (``update_bank``)."""
        if create:
            hma.create_bank(self.engine, bank.name, enabled_ratio=bank.matching_enabled_ratio)
            return
        hma.update_bank(
            self.engine,
            rename_from or bank.name,
            new_name=bank.name,
            enabled_ratio=bank.matching_enabled_ratio,
        )

    def bank_delete(self, name: str) -> None:
        hma.delete_bank(self.engine, name)

    def bank_add_content(
        self,
        bank_name: str,
        content_signals: Mapping[type[SignalType], str],
        config: Any = None,
    ) -> int:
        """Add one entry from hashes (``amber.hma.bank_signals``); returns its id."""
        signals = {cls.get_name(): value for cls, value in content_signals.items()}
        entry_id, _ = hma.bank_signals(self.engine, bank_name, signals)
        return entry_id


def get_storage() -> Storage:
    """The storage of the current app (``OpenMediaMatch.app.current_app``)."""
    return Storage(current_app())
