"""Bounded media reading and image decoding.

Everything a post carries is untrusted: a file can be huge, truncated, lie about its
size in its header (a decompression bomb), cost minutes of CPU (a progressive JPEG with
thousands of scans), or not be an image at all. This module reads at most ``max_bytes``;
before any pixel is decoded it checks the pixel count in the header, the number of
progressive scans of a JPEG, and the pixels that would be decoded (after the reduced
decode that JPEG allows); it reserves the decode's memory from a process-wide budget
(``DecodeBudget``) so that concurrent decodes cannot together exhaust memory; and it
turns every decoder failure into a ``MediaError`` that says what was wrong. A JPEG cut
short (browsers still show it) is decoded as far as its data goes and marked
``truncated``. The figures are in ``docs/benchmarks.md`` (``benchmarks/decode_memory.py``).

Images are decoded the way the reference PDQ tools decode them, so amber's hashes match
hashes shared by others:

- the *stored* pixels are used; the EXIF orientation tag is reported, never applied
  (rotated copies are caught by dihedral matching instead);
- any colour mode is converted with Pillow's ``convert("RGB")``, as python-threatexchange
  does: alpha is dropped, not composited, 16-bit and float greys are clipped to 0..255;
- animated images contribute their first frame.

PDQ only needs a small image, so by default the decode is reduced: JPEGs are decoded at
1/2, 1/4 or 1/8 scale (``Image.draft``) and the result is resized so that its longest
side is at most ``HASH_SIDE``, on PDQ's own sampling grid (``_reduce``) so that PDQ of
the small image equals PDQ of the full one in most cases. ``benchmarks/pdq_drift.py``
measures the remaining drift and the time saved (``docs/pdq-drift.md``).
"""

from __future__ import annotations

import io
import math
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from PIL import Image, UnidentifiedImageError

from amber.errors import MediaError, UserError

#: Longest side, in pixels, of the reduced decode that PDQ hashes. Chosen by measurement
#: (docs/pdq-drift.md): at 768, PDQ of the reduced decode equals PDQ of the full decode
#: for most photos (median drift 0 bits) and no test image moved more than 6; 512 lets
#: panoramas (short side ~100 px) drift 10 bits, 1024 costs about 3x more time to hash.
HASH_SIDE: Final = 768

#: Filter for the final resize. Bilinear, bicubic and Lanczos measured within a bit of
#: each other at 768 (box was worse); bilinear is the cheapest of the three.
HASH_FILTER: Final = Image.Resampling.BILINEAR

#: Formats amber decodes (JPEG includes MPO, the multi-picture JPEG of phone cameras).
#: Everything else is refused before a decoder runs: Pillow also opens formats (EPS
#: through Ghostscript, and many rare ones) that untrusted input should not reach.
FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

#: Formats whose frame count is written in the header, so checking it costs nothing.
#: (GIF and TIFF would have to be scanned frame by frame; only their first frame is used.)
_HEADER_FRAME_COUNT: Final = frozenset({"PNG", "WEBP", "MPO"})

_EXIF_ORIENTATION: Final = 0x0112
_MIB: Final = 1024 * 1024

#: Peak bytes of memory per decoded pixel, the weight a decode reserves from the budget:
#: Pillow holds every mode in up to 4 bytes a pixel, and up to three copies exist at once
#: (the decoded image, its RGB conversion, the edge-padded copy that ``_reduce`` resizes).
#: ``benchmarks/decode_memory.py`` measures it (``docs/benchmarks.md``).
BYTES_PER_DECODED_PIXEL: Final = 12

#: Memory that the decodes running at once in one process may reserve together.
DECODE_MEMORY: Final = 1024 * _MIB


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """How much one media file may cost to read and decode.

    ``max_bytes`` bounds the file size, ``max_pixels`` the width x height declared in the
    image header, ``max_frames`` the frame count where the header states it (animated
    PNG, WebP, MPO), ``max_scans`` the scans of a JPEG (each one a pass of the decoder over
    every block: 2,000 scans cost half a minute of CPU), ``max_decoded_pixels`` the pixels
    actually decoded (a JPEG is decoded at 1/2 to 1/8 scale first, so a 100-megapixel
    JPEG passes; other formats are decoded whole). Raises ``UserError`` when a limit is
    not a positive integer.
    """

    max_bytes: int = 64 * _MIB
    max_pixels: int = 100_000_000
    max_frames: int = 10_000
    max_scans: int = 100
    max_decoded_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_frames", "max_scans", "max_decoded_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"media limit {name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS: Final = MediaLimits()


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image decoded for hashing.

    ``image`` is the first frame's stored pixels in mode RGB, possibly reduced in size
    (``reduced``). ``width`` and ``height`` are the size stored in the file, ``format``
    Pillow's format name (``"JPEG"``, ``"PNG"``…), ``mode`` the file's own Pillow mode
    before conversion, ``orientation`` the EXIF orientation tag (1 to 8; 1 when absent
    or invalid), which has not been applied to ``image``. ``truncated`` is true when the
    file ended before the image did: ``image`` is what its data held (the rest grey, as
    browsers show it).
    """

    image: Image.Image
    width: int
    height: int
    format: str
    mode: str
    orientation: int
    reduced: bool
    truncated: bool = False


class DecodeBudget:
    """Memory (in bytes, or any unit) shared by the decodes running at once.

    A decode reserves its weight (``reserve``) and waits while the rest of the budget is
    taken; a weight above the whole budget waits for all of it, so it runs alone instead
    of never.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise UserError(f"decode budget must be a positive integer, not {capacity!r}")
        self.capacity = capacity
        self._available = capacity
        self._waiting = 0
        self._changed = threading.Condition()

    @property
    def available(self) -> int:
        """What is not reserved now."""
        return self._available

    @property
    def waiting(self) -> int:
        """How many reservations are waiting for memory now."""
        return self._waiting

    @contextmanager
    def reserve(self, weight: int) -> Iterator[None]:
        """Hold ``weight`` (at most the whole budget) while the block runs."""
        weight = max(0, min(weight, self.capacity))
        with self._changed:
            self._waiting += 1
            try:
                self._changed.wait_for(lambda: self._available >= weight)
            finally:
                self._waiting -= 1
            self._available -= weight
        try:
            yield
        finally:
            with self._changed:
                self._available += weight
                self._changed.notify_all()


@cache
def decode_budget() -> DecodeBudget:
    """This process's shared budget of ``DECODE_MEMORY`` bytes (made on first use)."""
    return DecodeBudget(DECODE_MEMORY)


def read_media(path: Path, *, limits: MediaLimits = DEFAULT_LIMITS) -> bytes:
    """Read a media file's bytes, never more than ``limits.max_bytes`` + 1.

    Raises ``MediaError`` when the file is missing, unreadable, not a regular file
    (a directory, a pipe, a device) or larger than ``limits.max_bytes``.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MediaError("file not found; check the path", path=path) from None
    except IsADirectoryError:
        raise MediaError("is a directory, not a media file", path=path) from None
    except PermissionError:
        raise MediaError("permission denied; make the file readable", path=path) from None
    except OSError as exc:
        raise MediaError(f"cannot open: {exc.strerror or exc}", path=path) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MediaError("is a directory, not a media file", path=path)
        if not stat.S_ISREG(info.st_mode):
            raise MediaError("is not a regular file (a pipe or device?)", path=path)
        if info.st_size > limits.max_bytes:
            raise MediaError(_too_big(info.st_size, limits), path=path)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise MediaError(f"cannot read: {exc.strerror or exc}", path=path) from None
    finally:
        os.close(fd)
    if len(data) > limits.max_bytes:  # the file grew while it was read
        raise MediaError(_too_big(len(data), limits), path=path)
    return data


def decode_image(
    data: bytes,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    max_side: int | None = HASH_SIDE,
    source: str | None = None,
    budget: DecodeBudget | None = None,
) -> DecodedImage:
    """Decode the first frame of an image to RGB stored pixels, reduced for hashing.

    The longest side of the result is at most ``max_side`` (JPEGs are decoded at a
    reduced scale first); ``max_side=None`` decodes at full resolution. ``source`` names
    the media in error messages. The decode's memory is reserved from ``budget`` (default:
    the process's ``decode_budget()``), waiting while other decodes hold it. A JPEG cut
    short is decoded as far as it goes (``truncated``). Raises ``MediaError`` when the
    bytes exceed the limits, are not an image in one of ``FORMATS``, declare more pixels,
    frames or scans than the limits allow, or are corrupt or (other than a JPEG)
    truncated. Pillow's warnings are not passed on.
    """
    if max_side is not None and max_side < 1:
        raise UserError(f"max_side must be a positive integer or None, not {max_side!r}")
    if not data:
        raise MediaError("file is empty", path=source)
    if len(data) > limits.max_bytes:
        raise MediaError(_too_big(len(data), limits), path=source)
    with _quiet_pillow():
        try:
            return _decode(
                data,
                limits=limits,
                max_side=max_side,
                source=source,
                budget=decode_budget() if budget is None else budget,
            )
        except MediaError:
            raise
        except Image.DecompressionBombError:
            raise MediaError(
                f"declares more than {limits.max_pixels:,} pixels; refusing a possible "
                "decompression bomb",
                path=source,
            ) from None
        except UnidentifiedImageError:
            raise MediaError(
                f"not an image in a supported format ({', '.join(FORMATS)})", path=source
            ) from None
        except MemoryError:
            raise MediaError("not enough memory to decode the image", path=source) from None
        except Exception as exc:
            # Pillow's plugins report corrupt input with many exception types (OSError,
            # SyntaxError, ValueError, EOFError, struct.error, IndexError…); a bad file must
            # end as a MediaError, never as a crash.
            raise MediaError(f"corrupt or truncated image: {_describe(exc)}", path=source) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB as the reference PDQ tools do (``convert("RGB")``).

    Alpha is dropped, not composited; 16-bit, 32-bit and float greys are clipped to
    0..255. Raises ``MediaError`` for a mode Pillow cannot convert.
    """
    if image.mode == "RGB":
        return image
    with _quiet_pillow():
        try:
            return image.convert("RGB")
        except ValueError:
            pass
        try:  # modes with premultiplied alpha and the like convert through RGBA
            return image.convert("RGBA").convert("RGB")
        except ValueError:
            raise MediaError(f"colour mode {image.mode!r} cannot be converted to RGB") from None


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Drop warnings raised inside Pillow while the block runs.

    Pillow warns about large images (DecompressionBombWarning: amber's own limits decide),
    odd palettes and malformed metadata; none of it may leak into amber's output. Pillow's
    global ``MAX_IMAGE_PIXELS`` is left alone. ``catch_warnings`` is process-wide before
    Python 3.14, so decodes in concurrent threads can interleave their filter lists; the
    filter only matches warnings raised in Pillow's modules, so the worst case is that
    Pillow stays quiet for longer, never that other warnings are lost.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        yield


class _JpegFeed(io.BytesIO):
    """The bytes of an image for Pillow to read. Once ``loading`` is set, the first read
    at the end of a JPEG answers an end-of-image marker and notes ``truncated``: libjpeg
    then finishes the image with what it has (grey for the rest), as Pillow's global
    ``LOAD_TRUNCATED_IMAGES`` would, but for this file only and with the fact recorded."""

    loading = False
    truncated = False

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if not chunk and self.loading and not self.truncated and size != 0:
            self.truncated = True
            return b"\xff\xd9"
        return chunk


def _decode(
    data: bytes,
    *,
    limits: MediaLimits,
    max_side: int | None,
    source: str | None,
    budget: DecodeBudget,
) -> DecodedImage:
    feed = _JpegFeed(data)
    with Image.open(feed, formats=FORMATS) as image:
        width, height = image.size
        if width < 1 or height < 1:
            raise MediaError(f"image has no pixels ({width}x{height})", path=source)
        if width * height > limits.max_pixels:
            raise MediaError(
                f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{limits.max_pixels:,}; refusing a possible decompression bomb",
                path=source,
            )
        if image.format in _HEADER_FRAME_COUNT:
            frames = int(getattr(image, "n_frames", 1))
            if frames > limits.max_frames:
                raise MediaError(
                    f"image declares {frames:,} frames, over the limit of {limits.max_frames:,}",
                    path=source,
                )
        jpeg = image.format in ("JPEG", "MPO")
        if jpeg:
            scans = count_scans(data, stop_after=limits.max_scans)
            if scans > limits.max_scans:
                raise MediaError(
                    f"JPEG has more than {limits.max_scans:,} scans (the limit); refusing "
                    "an image that could take minutes to decode",
                    path=source,
                )
        file_format = image.format or "unknown"
        file_mode = image.mode
        target = _target_size(width, height, max_side)
        scale = 1.0
        if target is not None and jpeg:
            # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding; the result is still at
            # least as large as the target, and the resize below finishes the job.
            drafted = image.draft(None, target)
            if drafted is not None:
                scale = width / drafted[1][2]
        decoded = image.size[0] * image.size[1]  # after draft: the pixels libjpeg makes
        if decoded > limits.max_decoded_pixels:
            raise MediaError(
                f"image is {width}x{height} = {width * height:,} pixels, and a {file_format} "
                f"is decoded whole: over the limit of {limits.max_decoded_pixels:,} pixels "
                "decoded at once",
                path=source,
            )
        with budget.reserve(decoded * BYTES_PER_DECODED_PIXEL):
            feed.loading = jpeg
            image.load()
            orientation = _orientation(image)
            rgb = to_rgb(image)
            if target is not None:
                rgb = _reduce(rgb, width=width, height=height, scale=scale, target=target)
            elif rgb is image:
                rgb = image.copy()  # detach from the file object closed on leaving `with`
    return DecodedImage(
        image=rgb,
        width=width,
        height=height,
        format=file_format,
        mode=file_mode,
        orientation=orientation,
        reduced=target is not None,
        truncated=feed.truncated,
    )


def count_scans(data: bytes, *, stop_after: int) -> int:
    """The scans (start-of-scan markers) of the JPEG ``data``, read from its markers
    without decoding; counting stops once it passes ``stop_after``. Data after the first
    end-of-image marker (an MPO's other pictures) is not read."""
    size = len(data)
    scans = 0
    at = 2  # after the start-of-image marker
    while at + 1 < size and scans <= stop_after:
        if data[at] != 0xFF:  # not at a marker: look for the next one
            found = data.find(b"\xff", at)
            if found < 0:
                break
            at = found
            continue
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        at += 2 + length
        if marker != 0xDA:
            continue
        scans += 1
        # Entropy-coded data follows the scan header: in it a 0xFF is followed by a 0x00
        # (a stuffed byte) or a restart marker; anything else is the next marker.
        while True:
            found = data.find(b"\xff", at)
            if found < 0 or found + 1 >= size:
                return scans
            following = data[found + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                at = found + 2
                continue
            at = found
            break
    return scans


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """The reduced size keeping the aspect ratio, or ``None`` when no reduction is due."""
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return None
    scale = max_side / longest
    return (
        min(max_side, max(1, round(width * scale))),
        min(max_side, max(1, round(height * scale))),
    )


def _reduce(
    image: Image.Image, *, width: int, height: int, scale: float, target: tuple[int, int]
) -> Image.Image:
    """Resize to ``target`` on PDQ's sampling grid.

    ``image`` is the stored ``width`` x ``height`` picture decoded at 1/``scale``. PDQ
    samples an image of N pixels at positions that depend on N (see ``_pdq_phase``); a
    plain resize moves those positions by about one pixel of the small image, which
    flips several hash bits. Shifting the resize window by the difference (about a
    pixel of the small image, edges replicated) puts the small image's samples where the
    full image's are: at 768 px this cuts the median drift from 4 bits to 0 and the
    largest from 12 to 6 (docs/pdq-drift.md).
    """
    dx = _pdq_phase(width) - _pdq_phase(target[0])
    dy = _pdq_phase(height) - _pdq_phase(target[1])
    span_x, span_y = width / scale, height / scale
    box = [dx * span_x, dy * span_y, (1 + dx) * span_x, (1 + dy) * span_y]
    overshoot = max(-box[0], -box[1], box[2] - image.width, box[3] - image.height)
    if overshoot > 0:
        pad = math.ceil(overshoot) + 1
        image = _pad_edges(image, pad)
        box = [edge + pad for edge in box]
    return image.resize(target, HASH_FILTER, box=(box[0], box[1], box[2], box[3]))


def _pad_edges(image: Image.Image, pad: int) -> Image.Image:
    """``image`` with ``pad`` pixels added on every side, each a copy of the nearest edge
    pixel (numpy's ``pad(mode="edge")``), in one new image: no array copies on the way."""
    width, height = image.size
    out = Image.new(image.mode, (width + 2 * pad, height + 2 * pad))
    out.paste(image, (pad, pad))
    nearest = Image.Resampling.NEAREST
    out.paste(image.crop((0, 0, width, 1)).resize((width, pad), nearest), (pad, 0))
    bottom = image.crop((0, height - 1, width, height)).resize((width, pad), nearest)
    out.paste(bottom, (pad, height + pad))
    full = height + 2 * pad
    out.paste(out.crop((pad, 0, pad + 1, full)).resize((pad, full), nearest), (0, 0))
    right = out.crop((pad + width - 1, 0, pad + width, full)).resize((pad, full), nearest)
    out.paste(right, (pad + width, 0))
    return out


def _pdq_phase(size: int) -> float:
    """Mean position, as a fraction of ``size``, at which PDQ samples a side of ``size`` px.

    PDQ (pdqhashing.cpp) blurs with two passes of a box filter of width
    ``(size + 127) // 128`` (an even width lags by half a pixel per pass), then takes the
    pixel at ``int((i + 0.5) * size / 64)`` for i in 0..63.
    """
    window = (size + 127) // 128
    lag = 1.0 if window % 2 == 0 else 0.0
    total = sum(int((i + 0.5) * size / 64) for i in range(64))
    return (total / 64 + 0.5 + lag) / size


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag, 1 when it is missing, malformed or out of range."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a malformed EXIF block must not fail the decode
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _too_big(size: int, limits: MediaLimits) -> str:
    return f"file is larger than the limit of {limits.max_bytes:,} bytes ({size:,} bytes or more)"


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
