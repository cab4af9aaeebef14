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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pdqhash

from amber.errors import MediaError, SignalValueError
from amber.signals.pdq import hamming
from amber.video import DEFAULT_VIDEO_LIMITS, VideoLimits, decode_video

#: PDQ distance at or under which two frames match (vPDQ's default, as PDQ's).
DISTANCE_THRESHOLD: Final = 31
#: Frames below this PDQ quality are not compared (vPDQ's default).
QUALITY_THRESHOLD: Final = 50
#: Share (percent) of frames that must match for two videos to match (vPDQ's example
#: compared-video threshold, python-threatexchange's confident-match threshold).
MATCH_PERCENT: Final = 80.0
#: Shortest stretch of a banked video that ``segments`` reports inside another video.
SEGMENT_SECONDS: Final = 3.0
#: How far a segment's frames may stray from its time offset, and the longest gap between
#: its frames (seconds): a re-encode's sampling phase and frame rate differ.
SEGMENT_SLACK: Final = 2.0

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
    samples only frames others are built from (``amber.video.decode_video``).
    ``benchmarks/video.py`` measures what each saves and what it costs in drift from the
    plain way. ``trim`` hashes each frame without the bars around the picture (letterbox,
    pillarbox, a vertical re-post's backdrop, a screen recording's app chrome), found as
    for photos (``amber.image_views.content_box``).

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
    features: list[Feature] = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            feature = parse_line(text, where=f"{path}:{number}")
            if features and feature.frame_number <= features[-1].frame_number:
                raise SignalValueError(
                    f"frame number {feature.frame_number} does not follow "
                    f"{features[-1].frame_number}",
                    signal_type="vpdq",
                    value=f"{path}:{number}",
                )
            features.append(feature)
    return features


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


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the query that shows a stretch of the compared video: the times (in
    seconds, first and last matched frame) in each, and how many query frames matched."""

    query_start: float
    query_end: float
    compared_start: float
    compared_end: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.query_end - self.query_start


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
    compared frame within ``distance_threshold``; a segment is a run of pairs whose offset
    (compared time minus query time) stays within ``slack`` seconds of the run's first,
    with no gap over ``slack`` seconds between consecutive query frames, lasting at least
    ``min_seconds``. The offset absorbs where the clip sits in each video; ``slack`` absorbs
    a different sampling phase or frame rate. Segments come in query order; where two
    overlap in the query, the one with more frames is kept.
    """
    q = [f for f in query if f.quality >= quality_threshold]
    c = [f for f in compared if f.quality >= quality_threshold]
    if not q or not c:
        return []
    near = _distances(_matrix(q), _matrix(c)) <= distance_threshold
    pairs = sorted((q[i].timestamp, c[j].timestamp) for i, j in zip(*np.nonzero(near), strict=True))
    runs: list[list[tuple[float, float]]] = []
    for tq, tc in pairs:  # each pair joins the open run it continues, else starts one
        for run in runs:
            first_q, first_c = run[0]
            last_q = run[-1][0]
            if 0 <= tq - last_q <= slack and abs((tc - tq) - (first_c - first_q)) <= slack:
                if tq != last_q:
                    run.append((tq, tc))
                break
        else:
            runs.append([(tq, tc)])
    found = [
        Segment(run[0][0], run[-1][0], min(p[1] for p in run), max(p[1] for p in run), len(run))
        for run in runs
        if run[-1][0] - run[0][0] >= min_seconds
    ]
    kept: list[Segment] = []
    for seg in sorted(found, key=lambda s: (-s.frames, s.query_start)):
        if all(seg.query_end < k.query_start or seg.query_start > k.query_end for k in kept):
            kept.append(seg)
    return sorted(kept, key=lambda s: s.query_start)


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
