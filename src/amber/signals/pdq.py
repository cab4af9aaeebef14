"""PDQ: Meta's 256-bit perceptual image hash, computed with the ``pdqhash`` bindings.

Values are 64 lowercase hex digits, most significant bit first, exactly as
python-threatexchange and the reference tools print them, so hashes exchanged with
other platforms compare directly. Two hashes are near-duplicates when their Hamming
distance is at most ``PdqSignal.DEFAULT_THRESHOLD`` (31, upstream's operating point);
hashes with quality below ``PdqSignal.MIN_QUALITY`` (50) come from flat or featureless
images and should not decide a match alone.

Query content is hashed in all 8 dihedral orientations (rotations and mirrors), so a
rotated or mirrored re-upload still matches a bank that holds only the original.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
import pdqhash
from PIL.Image import Image

from amber.errors import MediaError, SignalValueError
from amber.index.layout import IndexCorruptError
from amber.index.signal import Hit, SignalIndex
from amber.media import to_rgb
from amber.signals.base import Content, Role, SignalType, SignalValue
from amber.video import is_moving

if TYPE_CHECKING:
    import sqlalchemy as sa

    from amber.index.mih import PdqIndex
    from amber.policy import Policy

log = logging.getLogger(__name__)

#: Bytes in a PDQ hash (256 bits).
HASH_BYTES: Final = 32

#: Names of the 8 dihedral variants, in the order ``pdqhash.compute_dihedral`` returns
#: them. Rotations are counter-clockwise, as PIL's ``Transpose.ROTATE_90``; ``flipx``
#: mirrors top to bottom, ``flipy`` left to right, ``flip_plus1`` is the main-diagonal
#: transpose and ``flip_minus1`` the anti-diagonal one (checked against the reference
#: ``dih`` images in tests/data/pdq).
DIHEDRAL_NAMES: Final = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)

#: A view function: named views of an image that robust matching hashes besides the
#: image itself (borders trimmed, crops…). Each name becomes a value's ``variant``.
Views = Callable[[Image], list[tuple[str, Image]]]

_HEX: Final = re.compile(r"[0-9a-f]{64}")


def original_view(image: Image) -> list[tuple[str, Image]]:
    """The default views: the image as stored, named ``"original"``."""
    return [("original", image)]


def pdq_hash(image: Image) -> tuple[bytes, int]:
    """PDQ hash (32 bytes, most significant bit first) and quality (0-100) of ``image``.

    Non-RGB images are converted first (``amber.media.to_rgb``). Raises ``MediaError``
    for an image without pixels.
    """
    bits, quality = pdqhash.compute(_pixels(image))
    return _pack(bits), int(quality)


def pdq_dihedral(image: Image) -> list[tuple[str, bytes]]:
    """PDQ hashes of the 8 rotations and mirrors of ``image``, named as ``DIHEDRAL_NAMES``.

    Raises ``MediaError`` for an image without pixels.
    """
    return _dihedral(image)[0]


def to_hex(value: bytes) -> str:
    """64 lowercase hex digits of a 32-byte hash. Raises ``ValueError`` for another length."""
    if len(value) != HASH_BYTES:
        raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, not {len(value)}")
    return value.hex()


def from_hex(text: str) -> bytes:
    """The 32 bytes of a hash given as 64 hex digits (any case, surrounding space allowed).

    Raises ``SignalValueError`` naming the value when it is not 64 hex digits.
    """
    return bytes.fromhex(_canonical(text))


def hamming(a: bytes, b: bytes) -> int:
    """Number of bits that differ between two hashes of equal length.

    Raises ``ValueError`` when the lengths differ.
    """
    if len(a) != len(b):
        raise ValueError(f"cannot compare hashes of {len(a)} and {len(b)} bytes")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


class PdqSignal(SignalType):
    """PDQ perceptual hash of an image's stored pixels.

    ``query_views`` and ``bank_views`` give the views to hash for each role (default:
    the image as stored). A query hashes every view in all 8 dihedral orientations; the
    variant is the view name for the unrotated hash, else ``"<view>+<orientation>"``
    (``"original+flipy"``, ``"trimmed+rotate90"``). Bank content gets one hash per view.
    """

    name = "pdq"
    version = 1
    exact = False
    #: Match at Hamming distance ≤ 31 of 256 bits (upstream's suggested operating point).
    DEFAULT_THRESHOLD: ClassVar[int] = 31
    #: Hashes below this quality are unreliable: keep them, do not match on them alone.
    MIN_QUALITY: ClassVar[int] = 50
    default_threshold = DEFAULT_THRESHOLD
    #: Each bank's ``threshold`` is its PDQ distance (the CLI's and API's ``threshold``).
    bank_threshold = True
    min_quality = MIN_QUALITY

    def __init__(
        self, *, query_views: Views = original_view, bank_views: Views = original_view
    ) -> None:
        self.query_views = query_views
        self.bank_views = bank_views

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        """PDQ values of each view of ``content.image``; empty when it has no image, and for
        an animated GIF or WebP (its frames are ``vpdq`` values, judged as a video).

        Raises ``MediaError`` when a view has no pixels.
        """
        if content.image is None or is_moving(content.data):  # a video's frames are vpdq's
            return []
        values: list[SignalValue] = []
        if role is Role.bank:
            for view, image in self.bank_views(content.image):
                digest, quality = pdq_hash(image)
                values.append(SignalValue(self.name, to_hex(digest), quality, view))
            return values
        for view, image in self.query_views(content.image):
            hashes, quality = _dihedral(image)
            for orientation, digest in hashes:
                variant = view if orientation == "original" else f"{view}+{orientation}"
                values.append(SignalValue(self.name, to_hex(digest), quality, variant))
        return values

    def validate(self, text: str) -> str:
        """64 hex digits in lowercase. Raises ``SignalValueError`` otherwise."""
        return _canonical(text)

    def distance(self, a: str, b: str) -> int:
        """Hamming distance in bits (0-256). Raises ``SignalValueError`` for a bad value."""
        return hamming(from_hex(a), from_hex(b))

    def examples(self) -> list[str]:
        """PDQ hashes of ``amber.synthetic.photo(seed)`` for seeds 1, 2 and 3 (640x480)."""
        return list(_EXAMPLES)

    def index(self, *, db: sa.Engine, folder: Path) -> SignalIndex:
        """The persistent multi-index-hashing index (``amber.index.PdqIndex``) in ``folder``."""
        return PdqSignalIndex(folder)

    def quality_floor(self, policy: Policy) -> int | None:
        """The policy's ``[signals.pdq] min_quality`` (50 in the default policy)."""
        return policy.pdq_min_quality


class PdqSignalIndex(SignalIndex):
    """``PdqIndex`` (multi-index hashing, on disk, shared by the processes of a machine)
    behind the signal-index interface: values are hex text here, 32 bytes there.

    ``nearest`` looks up to ``MAX_RADIUS`` (63) bits out: PDQ hashes of unrelated images
    are about 128 bits apart, so nothing beyond is near in any useful sense.
    """

    def __init__(self, folder: Path) -> None:
        from amber.index.mih import PdqIndex

        try:
            self._index = PdqIndex.open(folder)
        except IndexCorruptError as exc:
            log.warning("PDQ index unusable (%s); rebuilding it from the database", exc)
            self._index = _empty(folder)

    @property
    def directory(self) -> Path:
        return self._index.directory

    @property
    def max_id(self) -> int:
        return self._index.max_id

    def __len__(self) -> int:
        return len(self._index)

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        self._index.add(np.asarray(ids, dtype=np.int64), _matrix(values))

    def add_all(self, batches: Iterable[tuple[Sequence[int], Sequence[str]]]) -> int:
        """Every batch in one ``PdqIndex.add``: a large add merges into a new base once
        (a base built per batch would make a bank of 10 million rows 100 builds)."""
        ids, hashes = [], []
        for batch_ids, values in batches:
            ids.append(np.asarray(batch_ids, dtype=np.int64))
            hashes.append(_matrix(values))
        if not ids:
            return 0
        all_ids = np.concatenate(ids)
        del ids
        all_hashes = np.concatenate(hashes)
        del hashes
        self._index.add(all_ids, all_hashes)
        return int(all_ids.shape[0])

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove(np.asarray(ids, dtype=np.int64))

    def clear(self) -> None:
        self._index = _empty(self._index.directory)

    def refresh(self) -> None:
        self._index.refresh()

    def warm_up(self) -> None:
        self._index.search(np.zeros((1, HASH_BYTES), np.uint8), PdqSignal.DEFAULT_THRESHOLD)

    def search(self, values: Sequence[str], radius: int) -> list[list[Hit]]:
        if not values or len(self._index) == 0:
            return [[] for _ in values]
        return self._index.search(_matrix(values), radius)

    def nearest(self, values: Sequence[str], k: int) -> list[list[Hit]]:
        from amber.index.mih import MAX_RADIUS

        return [hits[:k] for hits in self.search(values, MAX_RADIUS)]


def _empty(folder: Path) -> PdqIndex:
    from amber.index.mih import PdqIndex

    return PdqIndex.rebuild(folder, np.empty(0, np.int64), np.empty((0, HASH_BYTES), np.uint8))


def _matrix(values: Sequence[str]) -> np.ndarray:
    """Hex values as an ``(n, 32)`` uint8 array. Raises ``SignalValueError`` for a bad one."""
    if all(len(v) == 2 * HASH_BYTES for v in values):  # the usual case, in one call
        try:
            joined = bytes.fromhex("".join(values))
        except ValueError:
            joined = b""
        if len(joined) == HASH_BYTES * len(values):
            return np.frombuffer(joined, np.uint8).reshape(-1, HASH_BYTES)
    joined = b"".join(from_hex(v) for v in values)  # names the bad value
    return np.frombuffer(joined, np.uint8).reshape(-1, HASH_BYTES)


#: ``pdq_hash(amber.synthetic.photo(seed))`` for seeds 1, 2, 3; tests recompute them.
_EXAMPLES: Final = (
    "2cd21f4aff2bb1bb119bcf916c84c06e466d6f653505c454b7d43bce980d3113",
    "1d134a77d6ea66519ca39d386325b64a4ad92daf9346cb2db692924931267cd6",
    "b557c4a6425bcda7944a32b8d645c92674ad62b41d9aea694765a8cc6732f90f",
)


def _canonical(text: str) -> str:
    value = text.strip().lower()
    if not _HEX.fullmatch(value):
        raise SignalValueError("expected 64 hexadecimal digits", signal_type="pdq", value=text)
    return value


def _pixels(image: Image) -> np.ndarray:
    """The image as a contiguous height x width x 3 uint8 array, as pdqhash expects."""
    if image.width < 1 or image.height < 1:
        raise MediaError(f"cannot hash an image without pixels ({image.width}x{image.height})")
    return np.ascontiguousarray(np.asarray(to_rgb(image), dtype=np.uint8))


def _pack(bits: np.ndarray) -> bytes:
    """pdqhash's 256 0/1 values (most significant first) as 32 bytes."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _dihedral(image: Image) -> tuple[list[tuple[str, bytes]], int]:
    vectors, quality = pdqhash.compute_dihedral(_pixels(image))
    return [(n, _pack(v)) for n, v in zip(DIHEDRAL_NAMES, vectors, strict=True)], int(quality)
