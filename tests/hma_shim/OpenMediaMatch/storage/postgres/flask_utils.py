"""``reset_tables``: empty the current app's database, through amber's library."""

from __future__ import annotations

from OpenMediaMatch.app import current_app


def reset_tables() -> None:
    """Delete every bank of the current app (with its entries). Each app is made on a
    fresh schema, so there is rarely any."""
    engine = current_app().engine
    for bank in engine.banks.all():
        with engine.write_lock:
            engine.banks.delete(bank.name)
