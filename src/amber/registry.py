"""A registry per extension point: named items, duplicates rejected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from amber.errors import ConflictError, NotFoundError


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Items of one extension point (signal types, bank formats, actions) by stable name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add ``item``. Raises ``ConflictError`` if its name is already taken."""
        name = item.name
        if name in self._items:
            raise ConflictError(f"{self.kind} {name!r} is already registered; choose another name")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item called ``name``. Raises ``NotFoundError`` listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise NotFoundError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def names(self) -> list[str]:
        return list(self._items)
