"""``get_storage``: HMA's storage interface, each call made through amber's library on the
current app's engine (``amber.banks`` and ``amber.exchanges`` through ``amber.hma``, the
matcher)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType
from threatexchange.storage.interfaces import BankConfig, SignalExchangeAPIConfig
from threatexchange.utils.dataclass_json import dataclass_dump_dict

from amber import hma
from amber.exchange_apis import ApiType
from amber.registry import Registry
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

    # -- exchanges: amber.exchanges --------------------------------------------------------

    @property
    def exchange_types(self) -> dict[str, type[Any]]:
        """The installed exchange API types (amber's ``engine.exchanges.apis``)."""
        return {a.name: a.cls for a in self.engine.exchanges.apis}

    @exchange_types.setter
    def exchange_types(self, types: Mapping[str, type[Any]]) -> None:
        """Offer only these API types (a test narrows them, as HMA's config does)."""
        installed: Registry[ApiType] = Registry("exchange API")
        for name, cls in types.items():
            installed.register(ApiType(name, cls))
        self.engine.exchanges.apis = installed

    def exchange_apis_get_installed(self) -> dict[str, type[Any]]:
        return self.exchange_types

    def exchange_api_config_update(self, cfg: SignalExchangeAPIConfig) -> None:
        """Set the API type's credentials when the config has some (it is installed)."""
        if cfg.credentials is not None:
            name = cfg.api_cls.get_name()
            self.engine.exchanges.set_credentials(name, dataclass_dump_dict(cfg.credentials))

    def exchange_update(self, cfg: Any, *, create: bool = False) -> None:
        """Add an exchange from a collaboration config (``amber.hma.create_exchange``),
        or enable or disable one."""
        if create:
            settings = {
                k: v
                for k, v in dataclass_dump_dict(cfg).items()
                if k not in ("name", "api", "enabled")
            }
            hma.create_exchange(
                self.engine, cfg.name, cfg.api, {**settings, "enabled": cfg.enabled}
            )
            return
        self.engine.exchanges.update(cfg.name, enabled=cfg.enabled)

    def exchange_delete(self, name: str) -> None:
        hma.delete_exchange(self.engine, name)


def get_storage() -> Storage:
    """The storage of the current app (``OpenMediaMatch.app.current_app``): one per app,
    as HMA's, so what a test sets on it stays."""
    app = current_app()
    if app.storage is None:
        app.storage = Storage(app)
    storage: Storage = app.storage
    return storage
