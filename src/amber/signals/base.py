"""The signal-type interface: what every hash or detector plugs into.

A signal type is a configured instance that does no I/O. It turns content into
``SignalValue``s, checks values given as text, and says how far apart two values are.
Stable names (``name``) are storage keys and API values: never derived from a class name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image


class Role(StrEnum):
    """Why content is being hashed: to look it up, or to put it in a bank."""

    query = "query"
    bank = "bank"


@dataclass(frozen=True, slots=True)
class Content:
    """One media item as the signals see it: the original bytes and, for images, pixels.

    ``image`` is the decoded stored pixels (EXIF orientation not applied), in RGB,
    possibly reduced in size for hashing; ``None`` when the bytes are not an image.
    """

    data: bytes
    image: Image | None = None


@dataclass(frozen=True, slots=True)
class SignalValue:
    """One computed or imported value of a signal type.

    ``variant`` names the view of the content the value was computed from:
    ``"original"`` for the content as stored; other names (``"trimmed"``, ``"mirror"``,
    ``"crop90"``…) for views that robust matching adds. Only ``"original"`` values are
    stored as the content's own hashes; the others exist to match.
    """

    signal_type: str
    value: str
    quality: int | None = None
    variant: str = "original"


class SignalType(ABC):
    """A kind of signal: a hash (sha256, md5, pdq) or a detector score."""

    name: ClassVar[str]
    version: ClassVar[int]
    #: True when only identical values match (cryptographic hashes).
    exact: ClassVar[bool] = True

    @abstractmethod
    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        """Compute this signal's values for ``content``; empty when it does not apply.

        Raises ``MediaError`` when the content should apply but cannot be hashed.
        """

    @abstractmethod
    def validate(self, text: str) -> str:
        """Return the canonical form of a value given as text.

        Raises ``SignalValueError`` naming the value and what is wrong with it.
        """

    @abstractmethod
    def distance(self, a: str, b: str) -> int:
        """Distance between two canonical values; 0 means identical."""

    @abstractmethod
    def examples(self) -> list[str]:
        """Valid canonical values, for contract tests and the demo."""
