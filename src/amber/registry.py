"""A registry per extension point: named items, duplicates rejected, plug-ins from entry points.

Signal types, policy conditions and actions each have one. Built-ins are registered with
``register``, as a plug-in's items can be; an installed plug-in names its items under the
extension point's entry-point group, and ``register_entry_points`` loads them when the
engine is built, never at import time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, Protocol, TypeVar

from amber.errors import ConflictError, NotFoundError, UserError

#: What a stable name looks like: it is a storage key and an API value.
NAME = re.compile(r"[a-z][a-z0-9_]*")


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Items of one extension point (signal types, conditions, actions) by stable name."""

    def __init__(self, kind: str, *, pattern: re.Pattern[str] = NAME) -> None:
        self.kind = kind
        #: What a name looks like (bank formats are spelled with hyphens: ``amber-csv``).
        self.pattern = pattern
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add ``item``. Raises ``ConflictError`` if its name is already taken, ``UserError``
        if it is not a lowercase word (``a-z``, ``0-9``, ``_``; or as ``pattern`` says)."""
        name = item.name
        if not isinstance(name, str) or not self.pattern.fullmatch(name):
            words = (
                "a lowercase word (a-z, 0-9, _, starting with a letter)"
                if self.pattern is NAME
                else f"of the form {self.pattern.pattern}"
            )
            raise UserError(
                f"{self.kind} name {name!r} of {item!r} is not {words}; set `name` explicitly"
            )
        if name in self._items:
            raise ConflictError(f"{self.kind} {name!r} is already registered; choose another name")
        self._items[name] = item
        return item

    def register_entry_points(self, group: str, accept: Callable[[object], T]) -> list[str]:
        """Register the item each installed distribution names in entry-point ``group``;
        returns their names. ``accept`` checks a loaded object and returns it as an item
        (raising ``UserError`` saying what it should be).

        Raises ``UserError`` for an entry point that cannot be loaded or is named unlike its
        item, ``ConflictError`` for a name already taken (by a built-in or another plug-in).
        """
        added = []
        for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
            where = _describe(point)
            try:
                loaded = point.load()
            except Exception as exc:  # third-party code: any failure is the plug-in's
                raise UserError(
                    f"{where} could not be loaded ({type(exc).__name__}: {exc}); "
                    "fix or uninstall that plug-in"
                ) from exc
            try:
                item = accept(loaded)
            except UserError as exc:
                raise UserError(f"{where}: {exc.message}") from None
            if item.name != point.name:
                raise UserError(
                    f"{where} loads {self.kind} {item.name!r}; "
                    "the entry point and the item must have the same name"
                )
            try:
                self.register(item)
            except ConflictError as exc:
                raise ConflictError(f"{where}: {exc.message}") from None
            added.append(item.name)
        return added

    def get(self, name: str) -> T:
        """The item called ``name``. Raises ``NotFoundError`` listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            raise NotFoundError(f"unknown {self.kind} {name!r}; known: {self.known()}") from None

    def known(self) -> str:
        """The registered names, sorted and comma-separated (``none`` if empty): for messages."""
        return ", ".join(sorted(self._items)) or "none"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def names(self) -> list[str]:
        return list(self._items)


def _describe(point: EntryPoint) -> str:
    dist = point.dist
    by = "" if dist is None else f" of {dist.name} {dist.version}"
    return f"plug-in entry point {point.name!r} = {point.value!r} in group {point.group!r}{by}"
