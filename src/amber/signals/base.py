"""The signal-type interface: what every hash or detector plugs into.

A signal type is a configured instance that does no I/O. It turns content into
``SignalValue``s, checks values given as text, and says how far apart two values are.
Stable names (``name``) are storage keys and API values: never derived from a class name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    ``"crop90"``…) for views that robust matching adds. A frame of a video carries its
    view, time and number too (``frame_variant``: ``"original@12.000#360"``). Only the
    content's own values (``is_own``: ``"original"`` and its frames) are stored as its
    hashes; the others exist to match.
    """

    signal_type: str
    value: str
    quality: int | None = None
    variant: str = "original"
    #: Detectors: how strongly the content shows what they look for (0..1), and why.
    #: Media types: ``detail`` may note how the value was computed; one that starts with
    #: ``TRUNCATED`` marks a file decoded only as far as its data went.
    score: float | None = None
    detail: str | None = None


#: The start of a media value's ``detail`` when the file ended or broke before the content
#: did and the value comes from what could be decoded.
TRUNCATED = "truncated"

#: ``<view>@<seconds>#<frame number>``: the variant of one frame of a video.
_FRAME: re.Pattern[str] = re.compile(r"(.+)@(\d+(?:\.\d+)?)#(\d+)")


@dataclass(frozen=True, slots=True)
class FrameRef:
    """Where a frame's value comes from: the view, its time in seconds, its number."""

    view: str
    timestamp: float
    number: int


def frame_variant(view: str, timestamp: float, number: int) -> str:
    """The variant of a value computed from frame ``number`` at ``timestamp`` seconds of a
    video, in ``view`` (``"original@12.000#360"``, ``"trimmed+flipy@3.500#105"``)."""
    return f"{view}@{timestamp:.3f}#{number}"


def frame_of(variant: str) -> FrameRef | None:
    """The frame a variant names (``frame_variant``); ``None`` for a still's variant."""
    found = _FRAME.fullmatch(variant)
    if found is None:
        return None
    return FrameRef(found[1], float(found[2]), int(found[3]))


def is_own(variant: str) -> bool:
    """Is a value of this variant the content's own (stored, exported), not a view
    added to match? True for ``"original"`` and for a video's original frames."""
    return variant == "original" or variant.startswith("original@")


@dataclass(frozen=True, slots=True)
class Region:
    """A box in an image, in fractions of its width and height: ``[x0, y0, x1, y1]``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def to_json(self) -> list[float]:
        return [round(self.x0, 3), round(self.y0, 3), round(self.x1, 3), round(self.y1, 3)]


@dataclass(frozen=True, slots=True)
class Geometry:
    """A geometric type's verified match of a query image with a banked one
    (``SignalType.verify``): how many keypoint pairs agree with one homography
    (``inliers``, of ``pairs``), where the banked photo lies in the query (``post``) and
    which part of the banked photo the query shows (``entry``)."""

    inliers: int
    pairs: int
    post: Region
    entry: Region
    #: The median descriptor distance (bits) of the inlier pairs.
    distance: int

    def to_json(self) -> dict[str, object]:
        return {
            "inliers": self.inliers,
            "pairs": self.pairs,
            "post": self.post.to_json(),
            "entry": self.entry.to_json(),
        }


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
    #: The name of another type whose index this type's values go into and are looked up
    #: in, when that type is registered: its values and this type's are the same kind
    #: (vPDQ frames are PDQ hashes), so a photo finds a video's frame and a frame a photo.
    #: ``None``: the type's own index.
    shares_index: ClassVar[str | None] = None
    #: True when values are frames of a timeline (variants from ``frame_variant``): the
    #: matcher then judges a query video against a banked video as a whole (shares of
    #: frames matched on each side, segments played in order), not frame by frame.
    timed: ClassVar[bool] = False
    #: True when values are local features of one image (keypoints): the matcher hands
    #: every near pair of one media item and one entry to ``verify``, which says whether
    #: they show the same picture, and where (``amber.signals.local``).
    geometric: ClassVar[bool] = False
    #: True when the type is searched only for media that no other type matched: a
    #: costlier second look (local features after PDQ).
    fallback: ClassVar[bool] = False
    #: False for amber's own kinds of value that other tools do not read (local
    #: features): bank formats for python-threatexchange and HMA leave them out.
    shared: ClassVar[bool] = True

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

    def tune(self, index: SignalIndex, policy: Policy) -> None:
        """Apply what ``policy`` sets for searching this type's ``index`` (the engine calls
        it once the matcher has built its indexes); nothing by default."""
        return None

    def searched_always(self, policy: Policy) -> bool:
        """Does ``policy`` ask for this ``fallback`` type to be searched for every media
        item, not only those no other type matched? No by default."""
        return False

    def parse(self, text: str) -> list[SignalValue]:
        """The values one bank-file cell holds (``amber bank import``): by default one
        value, ``validate``d. A type whose content has many values (a video's frames)
        reads them all from one cell. Raises ``SignalValueError``."""
        return [SignalValue(self.name, self.validate(text))]

    def cells(self, values: Sequence[SignalValue]) -> list[str]:
        """The bank-file cells an entry's own values of this type are written as
        (``amber bank export``), the inverse of ``parse``: by default one a value."""
        return [v.value for v in values]

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

    def verify(
        self,
        pairs: Sequence[tuple[str, str, int]],
        *,
        min_inliers: int | None = None,
        mirrored: bool = False,
    ) -> Geometry | None:
        """A geometric type's judgement of one media item against one bank entry from
        their near value pairs ``(query value, entry value, distance)``: the match and
        where it lies, or ``None``. Only types with ``geometric`` are asked."""
        raise NotImplementedError(f"signal type {self.name!r} is not geometric")

    def votes(self, pairs: Sequence[tuple[str, int]]) -> int:
        """How strongly near pairs ``(query value, distance)`` of one media item and one
        entry point at the entry, before ``verify`` is asked (the matcher verifies only the
        entries with most votes, and counts them before it reads the entries' values): by
        default the distinct query values among them. Never more than the pairs."""
        return len({query for query, _ in pairs})

    @abstractmethod
    def examples(self) -> list[str]:
        """Valid canonical values, for contract tests and the demo."""
