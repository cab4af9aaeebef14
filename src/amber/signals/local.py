"""ORB: local features, for copies that were moved in the frame.

PDQ sees a photo as a whole: it tolerates re-encodes, filters and small turns, but not a
photo cropped to one corner, made one tile of a collage, set beside another, or filmed
off a screen at an angle (its hash moves with any shift over about 1%). Local features
survive all of these: ORB (OpenCV) finds corners of the picture and describes the patch
around each in 256 bits, whatever the patch's place, scale or turn in the frame.

Each keypoint is one value: its descriptor in 64 hex digits and its place in the image
as fractions of width and height, in ten-thousandths (``"<hex64>:<x>,<y>"``). A banked
photo keeps up to ``BANK_FEATURES`` of them; a query computes up to ``QUERY_FEATURES``
on the image and as many on its mirror image (variant ``"mirror"``), and they are not
stored with the post (their variants are not the post's own: see ``is_own``).

Two keypoints are near when their descriptors are at most ``DEFAULT_THRESHOLD`` bits
apart (``distance``), but one near keypoint says little. The matcher hands all the near
pairs of one media item and one bank entry to ``verify``, which fits a homography with
RANSAC and checks it is a plausible view of the banked photo: enough inliers
(``MIN_INLIERS``), each side's inliers spread over a part of its image, no mirror or
collapse. The answer says where the banked photo lies in the query and which part of
it the query shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np

from amber.errors import SignalValueError
from amber.signals.base import Content, Geometry, Region, Role, SignalType, SignalValue

if TYPE_CHECKING:
    import sqlalchemy as sa

    from amber.index.signal import SignalIndex
    from amber.policy import Policy

#: Longest side, in pixels, of the grey image the keypoints are found on.
FEATURE_SIDE: Final = 512
#: Keypoints kept for a banked photo and for each view of a query.
BANK_FEATURES: Final = 500
QUERY_FEATURES: Final = 500
#: Keypoints found for each one kept, before they are spread over the image (``_spread``).
SPREAD: Final = 3
#: How much brighter or darker than its ring a corner's centre must be (OpenCV's FAST
#: threshold; its default of 20 finds few corners in the smooth reduced decodes).
FAST_THRESHOLD: Final = 5
#: Cells a side of the grid keypoints are spread over.
GRID: Final = 8
#: ``"<64 hex digits>:<x>,<y>"``, x and y in ten-thousandths of the width and height.
_VALUE: Final = re.compile(r"([0-9a-f]{64}):(\d{1,4}),(\d{1,4})")
#: Fractions are written in these units.
_SCALE: Final = 10_000
#: The query's views: the image as it is and its mirror image (ORB's descriptors turn
#: with the image but do not mirror; a vertical flip is a mirror turned half a circle).
QUERY_VIEWS: Final = ("keypoint", "mirror")


def parse_value(text: str) -> tuple[bytes, float, float]:
    """A keypoint value's descriptor and place. Raises ``SignalValueError``."""
    found = _VALUE.fullmatch(text)
    if found is None or int(found[2]) >= _SCALE or int(found[3]) >= _SCALE:
        raise SignalValueError(
            f"expected <64 hex digits>:<x>,<y> with x and y in 0-{_SCALE - 1}",
            signal_type=OrbSignal.name,
            value=text[:120],
        )
    return bytes.fromhex(found[1]), int(found[2]) / _SCALE, int(found[3]) / _SCALE


def descriptors(values: Sequence[str]) -> np.ndarray:
    """The descriptors of keypoint values, one row of 32 bytes each."""
    out = np.empty((len(values), 32), dtype=np.uint8)
    for row, value in enumerate(values):
        out[row] = np.frombuffer(bytes.fromhex(value[:64]), dtype=np.uint8)
    return out


def _points(values: Sequence[str]) -> np.ndarray:
    out = np.empty((len(values), 2), dtype=np.float32)
    for row, value in enumerate(values):
        x, _, y = value[65:].partition(",")
        out[row] = (int(x) / _SCALE, int(y) / _SCALE)
    return out


def keypoints(image: object, count: int) -> list[str]:
    """Up to ``count`` keypoint values of a PIL image, strongest first."""
    import cv2

    grey = np.asarray(image.convert("L"))  # type: ignore[attr-defined]
    height, width = grey.shape
    scale = FEATURE_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        height, width = grey.shape
    if min(height, width) < 32:
        return []
    orb = cv2.ORB_create(nfeatures=count * SPREAD, fastThreshold=FAST_THRESHOLD)  # type: ignore[attr-defined]
    found, described = orb.detectAndCompute(grey, None)
    if described is None:
        return []
    out = []
    seen = set()
    for n in _spread(found, width, height, count):
        point, row = found[n], described[n]
        x = min(_SCALE - 1, int(point.pt[0] / width * _SCALE))
        y = min(_SCALE - 1, int(point.pt[1] / height * _SCALE))
        value = f"{row.tobytes().hex()}:{x},{y}"
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def _spread(found: Sequence[Any], width: int, height: int, count: int) -> list[int]:
    """``count`` of the keypoints ``found``, spread over the image: the strongest of each
    cell of a ``GRID`` x ``GRID`` grid in turn, so that every part of the photo keeps
    some (a crop of one corner must find its own), strongest first."""
    cells: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for n, point in enumerate(found):
        cell = (int(point.pt[0] * GRID / width), int(point.pt[1] * GRID / height))
        cells.setdefault(cell, []).append((-point.response, n))
    queues = [sorted(c) for c in cells.values()]
    chosen: list[tuple[float, int]] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        layer = sorted(q[depth] for q in queues if depth < len(q))
        chosen.extend(layer[: count - len(chosen)])
        depth += 1
    return [n for _, n in chosen]


class OrbSignal(SignalType):
    """ORB keypoints of an image, matched as a whole by geometric verification."""

    name = "orb"
    version = 1
    exact = False
    #: Descriptors at most this many bits apart are a candidate pair (of 256): true pairs
    #: of a copy lie about 20 bits apart (median of inliers 21, 90th percentile 30 on
    #: generated edits); farther ones are chance neighbours, which RANSAC never used and
    #: which cost the matcher bank rows to read (searched to 64 bits before: 38 posts of
    #: generated photos against 10 banked read 56,880 rows, now 9,697, the same matches).
    DEFAULT_THRESHOLD: ClassVar[int] = 48
    default_threshold = DEFAULT_THRESHOLD
    #: Pairs that must agree with one homography for a match (``amber bank create
    #: --min-inliers`` sets a bank's own).
    MIN_INLIERS: ClassVar[int] = 16
    #: Pairs at most this far apart count as votes for an entry (``votes``) and go to
    #: ``verify``: every candidate pair.
    STRONG_DISTANCE: ClassVar[int] = DEFAULT_THRESHOLD
    geometric = True
    fallback = True
    shared = False

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        image = content.image
        if image is None:
            return []
        if role is Role.bank:
            return [SignalValue(self.name, v) for v in keypoints(image, BANK_FEATURES)]
        from PIL import ImageOps

        out: list[SignalValue] = []
        for view, seen in zip(QUERY_VIEWS, (image, ImageOps.mirror(image)), strict=True):
            out.extend(
                SignalValue(self.name, v, variant=view) for v in keypoints(seen, QUERY_FEATURES)
            )
        return out

    def validate(self, text: str) -> str:
        canonical = text.strip().lower()
        parse_value(canonical)
        return canonical

    def parse(self, text: str) -> list[SignalValue]:
        """An entry's keypoints from one bank-file cell: values separated by spaces."""
        words = text.split()
        if not words:
            raise SignalValueError("no keypoints", signal_type=self.name, value=text[:120])
        return [SignalValue(self.name, self.validate(word)) for word in words]

    def cells(self, values: Sequence[SignalValue]) -> list[str]:
        """One cell with every keypoint of the entry, separated by spaces."""
        return [" ".join(v.value for v in values)] if values else []

    def distance(self, a: str, b: str) -> int:
        return int.bit_count(int(a[:64], 16) ^ int(b[:64], 16))

    def examples(self) -> list[str]:
        return [
            "0" * 64 + ":0,0",
            "f" * 64 + ":9999,9999",
            "5f3a" * 16 + ":1234,5678",
        ]

    def index(self, *, db: sa.Engine, folder: Path) -> SignalIndex:
        from amber.index.binary import BinaryIndex

        return BinaryIndex(self)

    def tune(self, index: SignalIndex, policy: Policy) -> None:
        """``[signals.orb] cells``: the cells each query keypoint reads."""
        from amber.index.binary import BinaryIndex

        if isinstance(index, BinaryIndex):
            index.nprobe = policy.orb_cells

    def searched_always(self, policy: Policy) -> bool:
        """``[signals.orb] always``."""
        return policy.orb_always

    def votes(self, pairs: Sequence[tuple[str, int]]) -> int:
        """The query keypoints with a close pair (at most ``STRONG_DISTANCE`` bits): true
        pairs of a copy lie about 20 bits apart (median of inliers 21, 90th percentile 30
        on generated edits)."""
        return len({query for query, distance in pairs if distance <= self.STRONG_DISTANCE})

    def verify(
        self,
        pairs: Sequence[tuple[str, str, int]],
        *,
        min_inliers: int | None = None,
        mirrored: bool = False,
    ) -> Geometry | None:
        """The best geometric match among near keypoint pairs ``(query value, entry value,
        distance)`` of one query view and one banked photo; ``None`` when no homography
        that is a plausible view of the banked photo has ``min_inliers`` (default
        ``MIN_INLIERS``) pairs on it. ``mirrored``: the query keypoints are of the mirror
        image (the ``"mirror"`` view); the region in the post is given unmirrored."""
        import cv2

        needed = self.MIN_INLIERS if min_inliers is None else min_inliers
        best: dict[str, tuple[str, int]] = {}  # per query keypoint, its nearest pair
        for query, entry, distance in pairs:
            if distance > self.STRONG_DISTANCE:  # chance neighbours: RANSAC's outliers
                continue
            if query not in best or distance < best[query][1]:
                best[query] = (entry, distance)
        taken: dict[str, tuple[str, int]] = {}  # per entry keypoint, one query keypoint
        for query, (entry, distance) in best.items():
            if entry not in taken or distance < best[taken[entry][0]][1]:
                taken[entry] = (query, distance)
        if len(taken) < max(needed, 4):
            return None
        entries = list(taken)
        queries = [taken[e][0] for e in entries]
        src, dst = _points(entries), _points(queries)
        # OpenCV's USAC with SPRT: a model most pairs disagree with is dropped after a few
        # of them, so a non-copy (most queries) costs a fraction of a millisecond where
        # plain RANSAC ran its 2,000 iterations (9.1 ms a call on average over 14,569
        # rejected pair sets captured from benchmarks/robustness.py --quick; 0.14 ms now).
        homography, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, 0.01, maxIters=2000)
        if homography is None or mask is None:
            return None
        inside = mask.ravel().astype(bool)
        inliers = int(inside.sum())
        if inliers < needed or not _plausible(homography):
            return None
        entry_box, post_box = _box(src[inside]), _box(dst[inside])
        # Inliers on a small patch of both (a logo, a line of text) are not the photo.
        if entry_box.area < 0.04 or post_box.area < 0.01:
            return None
        distances = sorted(taken[e][1] for e, keep in zip(entries, inside, strict=True) if keep)
        post = _project(homography, _UNIT)
        if mirrored:
            post = Region(1.0 - post.x1, post.y0, 1.0 - post.x0, post.y1)
        return Geometry(
            inliers=inliers,
            pairs=len(taken),
            post=post,
            entry=_project(np.linalg.inv(homography), _UNIT),
            distance=distances[(len(distances) - 1) // 2],
        )


_UNIT: Final = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)


def _box(points: np.ndarray) -> Region:
    low, high = points.min(axis=0), points.max(axis=0)
    return Region(float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def _project(homography: np.ndarray, corners: np.ndarray) -> Region:
    """The box, clipped to the image, of ``corners`` mapped by ``homography``."""
    ones = np.hstack([corners, np.ones((len(corners), 1))])
    mapped = ones @ homography.T
    xy = np.clip(mapped[:, :2] / mapped[:, 2:3], 0.0, 1.0)
    return _box(xy)


def _plausible(homography: np.ndarray) -> bool:
    """Is the homography a view of a photo: finite, keeps the photo's corners in order
    (no mirror, no twist), does not shrink it to a speck or blow it up beyond belief?"""
    if not np.all(np.isfinite(homography)):
        return False
    ones = np.hstack([_UNIT, np.ones((4, 1))])
    mapped = ones @ homography.T
    if np.any(mapped[:, 2] <= 1e-6):  # a corner behind the camera
        return False
    xy = mapped[:, :2] / mapped[:, 2:3]
    turns = []
    for i in range(4):
        a, b, c = xy[i], xy[(i + 1) % 4], xy[(i + 2) % 4]
        turns.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    if not (all(t > 0 for t in turns)):  # convex, same orientation as the original
        return False
    x, y = xy[:, 0], xy[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return 0.01 <= area <= 100.0
