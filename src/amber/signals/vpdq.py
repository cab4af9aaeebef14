"""vPDQ: Meta's video hash, a PDQ hash per sampled frame, and its brute-force match.

A video's vPDQ hash is a list of features, one per sampled frame: the frame number, the
PDQ quality (0-100), the PDQ hash and the frame's time in seconds. vPDQ's file format (the
reference ``vpdq-hash-video`` tool's output, ThreatExchange's ``vpdq/sample-hashes``) is
one feature a line, ``frame_number,quality,pdq_hex,timestamp`` with the time to 3
decimals; ``read_features`` and ``write_features`` read and write it.

Frames are decoded by ``amber.video`` (bounded, truncated files decoded as far as they go)
at their stored size and hashed with ``pdqhash`` as vPDQ's own tool does, so the hashes
agree with vPDQ's reference output to within a few bits a frame
(tests/test_vpdq.py checks it against ThreatExchange's sample videos).

``match`` is vPDQ's comparison: each side's frames are de-duplicated and those below
quality ``QUALITY_THRESHOLD`` (50) dropped; the query match share is the share of query
frames within ``DISTANCE_THRESHOLD`` (31) bits of some compared frame, the compared match
share the reverse. vPDQ's README gives 80 % of the compared video as its example operating
point; ``is_match`` asks that of both shares by default (a whole-video match).

``VpdqSignal`` is the ``vpdq`` signal type built on these: what posts and banks hash, and
how bank files carry a video's frames (``parse``/``cells``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
import pdqhash

from amber import timeline
from amber.errors import MediaError, SignalValueError
from amber.signals.base import (
    TRUNCATED,
    Content,
    Role,
    SignalType,
    SignalValue,
    frame_of,
    frame_variant,
)
from amber.signals.pdq import DIHEDRAL_NAMES, PdqSignal, hamming
from amber.timeline import SEGMENT_SECONDS, SEGMENT_SLACK, Segment
from amber.video import DEFAULT_VIDEO_LIMITS, VideoLimits, decode_video, is_moving

#: PDQ distance at or under which two frames match (vPDQ's default, as PDQ's).
DISTANCE_THRESHOLD: Final = 31
#: Frames below this PDQ quality are not compared (vPDQ's default).
QUALITY_THRESHOLD: Final = 50
#: Central crops (share of each side) of every banked frame that are hashed too, so that
#: a copy cropped that far still matches (PDQ itself tolerates about 1 % of shift).
BANK_CROPS: Final = (0.9, 0.8)
#: The central share of each query frame hashed too, to meet the bank's crop of that share
#: with a logo or watermark in the corners cut away from both; 0: none.
QUERY_CROP: Final = 0.8
#: Decode time (seconds) a banked video may take (``VpdqSignal.bank_limits``).
BANK_DECODE_SECONDS: Final = 900.0
#: Share (percent) of frames that must match for two videos to match (vPDQ's example
#: compared-video threshold, python-threatexchange's confident-match threshold).
MATCH_PERCENT: Final = 80.0

if TYPE_CHECKING:
    from pathlib import Path as _Path

    import sqlalchemy as sa

    from amber.index.signal import SignalIndex
    from amber.policy import Policy

_LINE: Final = re.compile(r"(\d+),(\d{1,3}),([0-9a-fA-F]{64}),(\d+(?:\.\d*)?)")


@dataclass(frozen=True, slots=True)
class Feature:
    """One hashed frame: number (from 0, in decode order), PDQ quality, PDQ hash (64 hex
    digits, lowercase) and time in seconds."""

    frame_number: int
    quality: int
    pdq_hex: str
    timestamp: float

    def line(self) -> str:
        """The feature as a line of vPDQ's file format (without the newline)."""
        return f"{self.frame_number},{self.quality},{self.pdq_hex},{self.timestamp:.3f}"


@dataclass(frozen=True, slots=True)
class VideoHash:
    """A video's vPDQ features, and whether its data ended before the video did."""

    features: tuple[Feature, ...]
    width: int
    height: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class MatchResult:
    """vPDQ's two shares, in percent: of the query's frames that match a compared frame,
    and of the compared video's frames that match a query frame."""

    query_match_percent: float
    compared_match_percent: float


def hash_video(
    data: bytes,
    *,
    seconds_per_hash: float = 0.0,
    max_side: int | None = None,
    dedupe: int | None = None,
    skip_unreferenced: bool = False,
    skip_loop_filter: bool = False,
    trim: bool = False,
    limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
    source: str | None = None,
) -> VideoHash:
    """vPDQ features of a video's frames: every frame (``seconds_per_hash`` 0, as vPDQ's
    reference hashes), else the first frame at or after each multiple of
    ``seconds_per_hash`` seconds.

    ``max_side`` hashes each frame scaled so that neither side is longer (``None``: at its
    stored size, as vPDQ); ``dedupe`` drops a frame whose hash is within that distance of
    the last frame kept (``None``: keep every frame, as vPDQ); ``skip_unreferenced``
    samples only frames others are built from and ``skip_loop_filter`` skips the codec's
    deblocking (``amber.video.decode_video``). ``benchmarks/video.py`` measures what each
    saves and what it costs in drift from the plain way. ``trim`` hashes each frame
    without the bars around the picture (letterbox, pillarbox, a vertical re-post's
    backdrop, a screen recording's app chrome), found as for photos
    (``amber.image_views.content_box``).

    Raises ``MediaError`` (from ``amber.video.decode_video``) when the bytes are not a
    video, a limit is exceeded or no frame decodes; a video that breaks part-way is hashed
    as far as it goes (``truncated``).
    """
    if seconds_per_hash < 0 or not math.isfinite(seconds_per_hash):
        raise MediaError(f"seconds_per_hash must be 0 or more, not {seconds_per_hash!r}")
    decoded = decode_video(
        data,
        limits=limits,
        source=source,
        every=seconds_per_hash,
        max_side=max_side,
        skip_unreferenced=skip_unreferenced,
        skip_loop_filter=skip_loop_filter,
    )
    features: list[Feature] = []
    last: bytes | None = None
    for frame in decoded:
        pixels = _trimmed(frame.pixels) if trim else frame.pixels
        bits, quality = pdqhash.compute(np.ascontiguousarray(pixels))
        digest = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
        if dedupe is not None and last is not None and hamming(digest, last) <= dedupe:
            continue
        last = digest
        features.append(Feature(frame.number, int(quality), digest.hex(), frame.timestamp))
    return VideoHash(tuple(features), decoded.width, decoded.height, decoded.truncated)


def _trimmed(pixels: np.ndarray) -> np.ndarray:
    """The frame without the bars around its picture, if it has any."""
    from PIL import Image

    from amber.image_views import content_box

    box = content_box(Image.fromarray(pixels))
    if box is None:
        return pixels
    return pixels[box.top : box.bottom, box.left : box.right]


def parse_line(text: str, *, where: str = "vpdq") -> Feature:
    """One line of vPDQ's file format. Raises ``SignalValueError`` naming ``where``."""
    found = _LINE.fullmatch(text.strip())
    if found is None or int(found[2]) > 100:
        raise SignalValueError(
            "expected frame_number,quality(0-100),pdq_hex(64 digits),timestamp",
            signal_type="vpdq",
            value=f"{where}: {text.strip()[:120]}",
        )
    number, quality, digest, timestamp = found.groups()
    return Feature(int(number), int(quality), digest.lower(), float(timestamp))


def read_features(path: Path) -> list[Feature]:
    """The features of a vPDQ hash file, in order; blank lines are skipped.

    Raises ``SignalValueError`` naming the file and line for a malformed line, or frame
    numbers that do not increase.
    """
    with path.open(encoding="utf-8") as lines:
        return parse_lines(lines, where=f"{path}:")


def parse_lines(lines: Iterable[str], *, where: str = "line ") -> list[Feature]:
    """The features of vPDQ frame lines, in order; blank lines are skipped.

    Raises ``SignalValueError`` naming ``where`` and the line number for a malformed line,
    or a frame number that does not increase.
    """
    features: list[Feature] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        feature = parse_line(text, where=f"{where}{number}")
        if features and feature.frame_number <= features[-1].frame_number:
            raise SignalValueError(
                f"frame number {feature.frame_number} does not follow {features[-1].frame_number}",
                signal_type="vpdq",
                value=f"{where}{number}",
            )
        features.append(feature)
    return features


def looks_like_vpdq(text: str) -> bool:
    """Is ``text`` meant as a vPDQ hash file? Its first non-blank line has four cells, the
    first a frame number (a bad line is then reported as one, with its line number)."""
    for line in text.splitlines():
        if line.strip():
            cells = line.strip().split(",")
            return len(cells) == 4 and cells[0].strip().isdigit()
    return False


def write_features(path: Path, features: Iterable[Feature]) -> None:
    """Write ``features`` in vPDQ's file format (one line each, ``\\n``-terminated)."""
    path.write_text("".join(f.line() + "\n" for f in features), encoding="utf-8")


def match(
    query: Sequence[Feature],
    compared: Sequence[Feature],
    *,
    distance_threshold: int = DISTANCE_THRESHOLD,
    quality_threshold: int = QUALITY_THRESHOLD,
) -> MatchResult:
    """vPDQ's brute-force comparison of two videos' features (see the module doc).

    A side with no frame of enough quality matches nothing (0 %).
    """
    q = _usable(query, quality_threshold)
    c = _usable(compared, quality_threshold)
    if not len(q) or not len(c):
        return MatchResult(0.0, 0.0)
    near = _distances(q, c) <= distance_threshold
    return MatchResult(
        100.0 * float(near.any(axis=1).sum()) / len(q),
        100.0 * float(near.any(axis=0).sum()) / len(c),
    )


def is_match(
    result: MatchResult,
    *,
    query_percent: float = MATCH_PERCENT,
    compared_percent: float = MATCH_PERCENT,
) -> bool:
    """Do both shares reach their thresholds?"""
    return (
        result.query_match_percent >= query_percent
        and result.compared_match_percent >= compared_percent
    )


def segments(
    query: Sequence[Feature],
    compared: Sequence[Feature],
    *,
    distance_threshold: int = DISTANCE_THRESHOLD,
    quality_threshold: int = QUALITY_THRESHOLD,
    min_seconds: float = SEGMENT_SECONDS,
    slack: float = SEGMENT_SLACK,
) -> list[Segment]:
    """The stretches of ``query`` that play a stretch of ``compared`` in order: a clip of a
    banked video inside a longer compilation, with the time ranges in both.

    Each query frame (of quality at least ``quality_threshold``) is paired with every
    compared frame within ``distance_threshold``; the pairs make segments as
    ``amber.timeline.segments`` says.
    """
    q = [f for f in query if f.quality >= quality_threshold]
    c = [f for f in compared if f.quality >= quality_threshold]
    if not q or not c:
        return []
    near = _distances(_matrix(q), _matrix(c)) <= distance_threshold
    pairs = ((q[i].timestamp, c[j].timestamp) for i, j in zip(*np.nonzero(near), strict=True))
    return timeline.segments(pairs, min_seconds=min_seconds, slack=slack)


def _matrix(features: Sequence[Feature]) -> np.ndarray:
    """The hashes of ``features`` in order, as ``(n, 32)`` bytes."""
    joined = b"".join(bytes.fromhex(f.pdq_hex) for f in features)
    return np.frombuffer(joined, np.uint8).reshape(-1, 32)


def _usable(features: Sequence[Feature], quality_threshold: int) -> np.ndarray:
    """The distinct hashes of quality at least ``quality_threshold``, as ``(n, 32)`` bytes."""
    seen = dict.fromkeys(f.pdq_hex for f in features if f.quality >= quality_threshold)
    joined = b"".join(bytes.fromhex(h) for h in seen)
    return np.frombuffer(joined, np.uint8).reshape(-1, 32)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between every row of ``a`` and of ``b``, ``(len(a), len(b))``."""
    bits_a = np.unpackbits(a, axis=1).astype(np.int16)
    bits_b = np.unpackbits(b, axis=1).astype(np.int16)
    same = bits_a @ bits_b.T + (1 - bits_a) @ (1 - bits_b).T
    return np.asarray(256 - same)


class VpdqSignal(SignalType):
    """vPDQ as a signal type: a PDQ hash per sampled frame of a video (MP4/MOV, MKV/WebM,
    animated GIF and WebP), each a value whose variant names its frame
    (``amber.signals.base.frame_variant``).

    Query videos are sampled every ``query_seconds`` (1 s) and decoded reduced to
    ``query_max_side`` (384 px) with the frames no other is built from and the codec's
    deblocking filter skipped; each frame is hashed as stored in its 8 rotations and
    mirrors (a phone's turned recording, a mirrored copy), and again without its bars
    when it has any (letterbox, pillarbox, a vertical re-post's backdrop, a screen
    recording's chrome, a caption bar: ``amber.image_views.content_box``); its centre
    (``QUERY_CROP``) is hashed too, so that a logo in a corner, cut away from both sides,
    does not hide a match with the bank's crop. Banked videos
    are sampled every ``bank_seconds`` (0.25 s) at their stored size, as vPDQ hashes them,
    so the sampling phase of a re-encode does not matter; each banked frame is hashed as
    stored, without its bars if it has any, and as its central crops (``BANK_CROPS``). A
    frame within
    ``DEDUPE_BITS`` of the last one kept is dropped (a still scene keeps one frame).
    ``benchmarks/video.py`` measures the speed and the drift this costs.

    Frames are PDQ hashes: the values go into PDQ's index (``shares_index``), so a photo
    finds a video's frame and a video's frame a photo. The matcher judges a video against
    a banked video as a whole (``timed``: ``amber.timeline``).
    """

    name = "vpdq"
    version = 1
    exact = False
    default_threshold = DISTANCE_THRESHOLD
    bank_threshold = True
    min_quality = QUALITY_THRESHOLD
    shares_index = "pdq"
    timed = True
    #: Consecutive frames at most this far apart (bits) are hashed once.
    DEDUPE_BITS: ClassVar[int] = 4

    def __init__(
        self,
        *,
        limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
        query_seconds: float = 1.0,
        bank_seconds: float = 0.25,
        query_max_side: int | None = 384,
    ) -> None:
        self.limits = limits
        #: Banking hashes more, at the stored size, from content an operator chose: the same
        #: limits but ``BANK_DECODE_SECONDS`` of decoding (a 10-minute 720p video takes
        #: about two minutes on one core).
        self.bank_limits = replace(
            limits, max_decode_seconds=max(limits.max_decode_seconds, BANK_DECODE_SECONDS)
        )
        self.query_seconds = query_seconds
        self.bank_seconds = bank_seconds
        self.query_max_side = query_max_side

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        """One value per sampled frame and view; empty for content that is not a video or
        an animation of more than one frame.

        Raises ``MediaError`` when the video cannot be decoded at all or a decode limit is
        exceeded; a video that breaks part-way gives the frames before the break, each
        value's ``detail`` starting with ``TRUNCATED``.
        """
        if not is_moving(content.data):
            return []
        query = role is Role.query
        decoded = decode_video(
            content.data,
            limits=self.limits if query else self.bank_limits,
            every=self.query_seconds if query else self.bank_seconds,
            max_side=self.query_max_side if query else None,
            skip_unreferenced=query,
            skip_loop_filter=query,
        )
        values: list[SignalValue] = []
        last: bytes | None = None
        for frame in decoded:
            hashes = _frame_hashes(frame.pixels, query=query)
            own = hashes[0][1]
            if last is not None and hamming(own, last) <= self.DEDUPE_BITS:
                continue
            last = own
            for view, digest, quality in hashes:
                variant = frame_variant(view, frame.timestamp, frame.number)
                values.append(SignalValue(self.name, digest.hex(), quality, variant))
        if decoded.truncated:  # the frames before the break stand, and say so
            note = f"{TRUNCATED}: {decoded.error or 'the data ended early'}"
            values = [replace(v, detail=note) for v in values]
        return values

    def validate(self, text: str) -> str:
        """One frame's hash: 64 hex digits in lowercase. Raises ``SignalValueError``."""
        value = text.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise SignalValueError(
                "expected 64 hexadecimal digits", signal_type=self.name, value=text
            )
        return value

    def distance(self, a: str, b: str) -> int:
        """Hamming distance in bits between two frames' hashes."""
        return hamming(bytes.fromhex(self.validate(a)), bytes.fromhex(self.validate(b)))

    def examples(self) -> list[str]:
        """Frames are PDQ hashes: PDQ's examples."""
        return PdqSignal().examples()

    def index(self, *, db: sa.Engine, folder: _Path) -> SignalIndex:
        """PDQ's index (used when the ``pdq`` type is not registered to share its own)."""
        from amber.signals.pdq import PdqSignalIndex

        return PdqSignalIndex(folder)

    def quality_floor(self, policy: Policy) -> int | None:
        """Frames are PDQ hashes: the policy's ``[signals.pdq] min_quality``."""
        return policy.pdq_min_quality

    def parse(self, text: str) -> list[SignalValue]:
        """A video's frames from one bank-file cell: vPDQ's frame lines
        (``frame_number,quality,pdq_hex,timestamp``, one a line), python-threatexchange's
        JSON list of ``"pdq_hex,quality,timestamp"`` strings, or one frame's 64 hex digits.
        Raises ``SignalValueError`` naming the line."""
        stripped = text.strip()
        if stripped.startswith("["):
            features = _from_pytx(stripped)
        elif "," in stripped:
            features = parse_lines(stripped.splitlines())
        else:
            features = [Feature(0, 100, self.validate(stripped), 0.0)]
        if not features:
            raise SignalValueError("no frames", signal_type=self.name, value=text[:120])
        if len(features) > self.limits.max_frames:
            raise SignalValueError(
                f"{len(features):,} frames, over the limit of {self.limits.max_frames:,}",
                signal_type=self.name,
                value=text[:120],
            )
        return [to_value(f) for f in features]

    def cells(self, values: Sequence[SignalValue]) -> list[str]:
        """An entry's frames as one cell of vPDQ's frame lines (in frame order)."""
        features = sorted((f for v in values if (f := to_feature(v)) is not None), key=_order)
        return ["\n".join(f.line() for f in features)] if features else []


def to_value(feature: Feature, view: str = "original") -> SignalValue:
    """A vPDQ feature as a ``vpdq`` value of ``view``."""
    variant = frame_variant(view, feature.timestamp, feature.frame_number)
    return SignalValue("vpdq", feature.pdq_hex, feature.quality, variant)


def to_feature(value: SignalValue) -> Feature | None:
    """The vPDQ feature of a value of the original view; ``None`` for another view."""
    frame = frame_of(value.variant)
    if frame is None or frame.view != "original":
        return None
    return Feature(frame.number, value.quality or 0, value.value, frame.timestamp)


def _order(feature: Feature) -> tuple[int, float]:
    return feature.frame_number, feature.timestamp


def _from_pytx(text: str) -> list[Feature]:
    """python-threatexchange's serialisation: a JSON list of ``"hex,quality,time"``."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise SignalValueError(
            f"not a JSON list ({exc})", signal_type="vpdq", value=text[:120]
        ) from None
    if not isinstance(items, list):
        raise SignalValueError("expected a JSON list", signal_type="vpdq", value=text[:120])
    features = []
    for number, item in enumerate(items):
        parts = item.split(",") if isinstance(item, str) else []
        try:
            digest, quality, timestamp = parts
            feature = parse_line(f"{number},{quality.strip()},{digest.strip()},{timestamp.strip()}")
        except (ValueError, SignalValueError):
            raise SignalValueError(
                'expected "pdq_hex,quality,timestamp"',
                signal_type="vpdq",
                value=f"item {number}: {str(item)[:120]}",
            ) from None
        features.append(feature)
    return features


def _frame_hashes(pixels: np.ndarray, *, query: bool) -> list[tuple[str, bytes, int]]:
    """A frame's hashes and their qualities by view (``"original"`` first): again without
    the frame's bars when it has any; for a query each in its 8 rotations and mirrors
    (``amber.signals.pdq.DIHEDRAL_NAMES``) and the centre of the last (``QUERY_CROP``),
    for a bank frame its central crops (``BANK_CROPS``) too."""
    from PIL import Image

    from amber.image_views import content_box

    views = [("original", pixels)]
    box = content_box(Image.fromarray(pixels))
    if box is not None:
        views.append(("trimmed", pixels[box.top : box.bottom, box.left : box.right]))
    if query and QUERY_CROP:
        picture = views[-1][1]
        h, w = picture.shape[:2]
        top, left = round(h * (1 - QUERY_CROP) / 2), round(w * (1 - QUERY_CROP) / 2)
        views.append((f"crop{round(QUERY_CROP * 100)}", picture[top : h - top, left : w - left]))
    if not query:
        picture = views[-1][1]
        h, w = picture.shape[:2]
        for share in BANK_CROPS:
            top, left = round(h * (1 - share) / 2), round(w * (1 - share) / 2)
            crop = picture[top : h - top, left : w - left]
            views.append((f"crop{round(share * 100)}", crop))
    out: list[tuple[str, bytes, int]] = []
    for view, array in views:
        array = np.ascontiguousarray(array)
        if query and not view.startswith("crop"):  # 8 rotations and mirrors, one DCT
            vectors, quality = pdqhash.compute_dihedral(array)
            for orientation, vector in zip(DIHEDRAL_NAMES, vectors, strict=True):
                name = view if orientation == "original" else f"{view}+{orientation}"
                out.append((name, _packed(vector), int(quality)))
        else:
            bits, quality = pdqhash.compute(array)
            out.append((view, _packed(bits), int(quality)))
    return out


def _packed(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
