"""Bounded media reading and image decoding.

Everything a post carries is untrusted: a file can be huge, truncated, lie about its
size in its header (a decompression bomb), or not be an image at all. This module reads
at most ``max_bytes``, checks the pixel count in the header before any pixel is
decoded, and turns every decoder failure into a ``MediaError`` that says what was wrong.

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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
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


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """How much one media file may cost to read and decode.

    ``max_bytes`` bounds the file size, ``max_pixels`` the width x height declared in the
    image header, ``max_frames`` the frame count where the header states it (animated
    PNG, WebP, MPO). Raises ``UserError`` when a limit is not a positive integer.
    """

    max_bytes: int = 64 * _MIB
    max_pixels: int = 100_000_000
    max_frames: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_frames"):
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
    or invalid), which has not been applied to ``image``.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    mode: str
    orientation: int
    reduced: bool


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
) -> DecodedImage:
    """Decode the first frame of an image to RGB stored pixels, reduced for hashing.

    The longest side of the result is at most ``max_side`` (JPEGs are decoded at a
    reduced scale first); ``max_side=None`` decodes at full resolution. ``source`` names
    the media in error messages. Raises ``MediaError`` when the bytes exceed the limits,
    are not an image in one of ``FORMATS``, declare more pixels or frames than the limits
    allow, or are truncated or corrupt. Pillow's warnings are not passed on.
    """
    if max_side is not None and max_side < 1:
        raise UserError(f"max_side must be a positive integer or None, not {max_side!r}")
    if not data:
        raise MediaError("file is empty", path=source)
    if len(data) > limits.max_bytes:
        raise MediaError(_too_big(len(data), limits), path=source)
    with _quiet_pillow():
        try:
            return _decode(data, limits=limits, max_side=max_side, source=source)
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


def _decode(
    data: bytes, *, limits: MediaLimits, max_side: int | None, source: str | None
) -> DecodedImage:
    with Image.open(io.BytesIO(data), formats=FORMATS) as image:
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
        file_format = image.format or "unknown"
        file_mode = image.mode
        target = _target_size(width, height, max_side)
        scale = 1.0
        if target is not None and image.format in ("JPEG", "MPO"):
            # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding; the result is still at
            # least as large as the target, and the resize below finishes the job.
            drafted = image.draft(None, target)
            if drafted is not None:
                scale = width / drafted[1][2]
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
    )


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
        pixels = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        image = Image.fromarray(pixels, "RGB")
        box = [edge + pad for edge in box]
    return image.resize(target, HASH_FILTER, box=(box[0], box[1], box[2], box[3]))


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
