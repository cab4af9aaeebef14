"""The signal-type interface: what every hash or detector plugs into.

A signal type is a configured instance that does no I/O. It turns content into
``SignalValue``s, checks values given as text, and says how far apart two values are.
Stable names (``name``) are storage keys and API values: never derived from a class name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import sqlalchemy as sa
    from PIL.Image import Image

    from amber.index.signal import SignalIndex
    from amber.policy import Policy


class Reads(StrEnum):
    """What a signal type reads: each media file, or the post's own words."""

    media = "media"
    post = "post"


class Role(StrEnum):
    """Why content is being hashed: to look it up, or to put it in a bank."""

    query = "query"
    bank = "bank"


@dataclass(frozen=True, slots=True)
class Content:
    """What the signals see: a media item's bytes and pixels, or a post's words.

    For media, ``data`` is the original bytes and ``image`` the decoded stored pixels
    (EXIF orientation not applied) in RGB, possibly reduced for hashing; ``None`` when the
    bytes are not an image. For a post, ``text`` is its text and ``question``/``options``
    its poll, if any.
    """

    data: bytes = b""
    image: Image | None = None
    text: str | None = None
    question: str | None = None
    options: tuple[str, ...] = ()


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
    #: Detectors: how strongly the content shows what they look for (0..1), and why.
    score: float | None = None
    detail: str | None = None


class SignalType(ABC):
    """A kind of signal: a hash (sha256, md5, pdq) or a detector score.

    The type owns how its values are computed (``compute``), checked (``validate``),
    compared (``distance``) and found among bank values (``index``), and when two values
    match (``default_threshold``, ``bank_threshold``, ``min_quality``). Instances are sent
    to the hashing worker processes, so they must pickle (plain attributes, module-level
    functions).
    """

    name: ClassVar[str]
    version: ClassVar[int]
    #: What the type reads: media files (hashes) or the post's words (detectors).
    reads: ClassVar[Reads] = Reads.media
    #: True when only identical values match (cryptographic hashes).
    exact: ClassVar[bool] = True
    #: Largest distance that is a match (0 for exact types), unless a bank's own
    #: threshold applies (``bank_threshold``). Also what "the same media" means when the
    #: policy compares a post with earlier ones.
    default_threshold: ClassVar[int] = 0
    #: True when each bank's ``threshold`` (``amber bank create --threshold``) is this
    #: type's match distance for that bank's entries.
    bank_threshold: ClassVar[bool] = False
    #: Values below this quality are kept but never match (query or bank side); ``None``
    #: when the type has no quality.
    min_quality: ClassVar[int | None] = None

    def index(self, *, db: sa.Engine, folder: Path) -> SignalIndex:
        """The index this type's bank values are found through.

        ``folder`` is this type's own folder for an index kept on disk (created when
        needed); ``db`` is the database for one that reads it. By default exact types are
        looked up in the database and others are compared one by one
        (``BruteForceIndex``); a type with a faster index overrides this.
        """
        from amber.index.signal import BruteForceIndex, DatabaseIndex

        if self.exact:
            return DatabaseIndex(db, self.name)
        return BruteForceIndex(self)

    def quality_floor(self, policy: Policy) -> int | None:
        """The minimum quality ``policy`` sets for this type; ``min_quality`` by default."""
        return self.min_quality

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
