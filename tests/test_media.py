"""Bounded reading and decoding of media: every colour mode, bombs, broken files, limits."""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amber.errors import MediaError, UserError
from amber.media import (
    DEFAULT_LIMITS,
    HASH_SIDE,
    DecodedImage,
    MediaLimits,
    decode_image,
    read_media,
    to_rgb,
)
from amber.synthetic import photo

EXIF_ORIENTATION = 0x0112


@pytest.fixture(autouse=True)
def warnings_are_errors() -> Iterator[None]:
    """Any warning that escapes amber's decoding fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def encode(image: Image.Image, file_format: str, **options: object) -> bytes:
    """``image`` saved in ``file_format``, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, file_format, **options)
    return buffer.getvalue()


def reference_rgb(data: bytes) -> np.ndarray:
    """What python-threatexchange hashes: ``Image.open(...).convert("RGB")``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels but holds almost none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _grey16(big_endian: bool) -> Callable[[Image.Image], Image.Image]:
    def make(base: Image.Image) -> Image.Image:
        # 0..1020: values over 255 show that 16-bit greys are clipped, as convert() does.
        values = np.asarray(base.convert("L"), dtype=np.uint16) * 4
        mode = "I;16B" if big_endian else "I;16"
        raw = values.astype(">u2" if big_endian else "<u2").tobytes()
        return Image.frombytes(mode, base.size, raw)

    return make


MODES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "1": lambda base: base.convert("1"),
    "L": lambda base: base.convert("L"),
    "P": lambda base: base.convert("P"),
    "PA": lambda base: base.convert("P").convert("PA"),
    "RGB": lambda base: base,
    "RGBA": lambda base: Image.merge("RGBA", (*base.split(), base.convert("L"))),
    "LA": lambda base: Image.merge("LA", (base.convert("L"), base.split()[0])),
    "CMYK": lambda base: base.convert("CMYK"),
    "I;16": _grey16(big_endian=False),
    "I;16B": _grey16(big_endian=True),
    "I": lambda base: base.convert("I"),
    "F": lambda base: base.convert("F"),
    "YCbCr": lambda base: base.convert("YCbCr"),
    "LAB": lambda base: Image.merge("LAB", base.split()),
    "HSV": lambda base: base.convert("HSV"),
}

#: (mode, a file format that stores that mode unchanged)
MODE_FILES = [
    ("1", "PNG"),
    ("L", "PNG"),
    ("P", "PNG"),
    ("P", "GIF"),
    ("PA", "TIFF"),
    ("RGB", "JPEG"),
    ("RGB", "WEBP"),
    ("RGB", "BMP"),
    ("RGBA", "PNG"),
    ("LA", "PNG"),
    ("CMYK", "JPEG"),
    ("CMYK", "TIFF"),
    ("I;16", "PNG"),
    ("I;16B", "TIFF"),
    ("I", "TIFF"),
    ("F", "TIFF"),
    ("YCbCr", "TIFF"),
    ("LAB", "TIFF"),
]


@pytest.mark.parametrize(("mode", "file_format"), MODE_FILES)
def test_every_mode_decodes_to_rgb_like_the_reference(mode: str, file_format: str) -> None:
    image = MODES[mode](photo(3, 64, 48))
    data = encode(image, file_format)
    assert Image.open(io.BytesIO(data)).mode == mode  # the file really keeps the mode

    decoded = decode_image(data)

    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (64, 48)
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.mode == mode
    assert decoded.format == file_format
    assert not decoded.reduced
    np.testing.assert_array_equal(np.asarray(decoded.image), reference_rgb(data))


@pytest.mark.parametrize("mode", ["HSV", "PA", "LAB", "RGBa"])
def test_to_rgb_converts_modes_without_a_usual_file_format(mode: str) -> None:
    base = photo(4, 32, 24)
    image = MODES[mode](base) if mode in MODES else base.convert("RGBA").convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == (32, 24)


def test_hsv_round_trips_to_nearly_the_same_colours() -> None:
    base = photo(4, 32, 24)
    back = np.asarray(to_rgb(base.convert("HSV")), dtype=int)
    assert np.abs(back - np.asarray(base, dtype=int)).mean() < 3


def test_to_rgb_refuses_a_mode_pillow_cannot_convert() -> None:
    with pytest.raises(MediaError, match="'La'"):
        to_rgb(Image.new("La", (4, 4)))


def test_sixteen_bit_grey_is_clipped_not_scaled() -> None:
    data = encode(MODES["I;16"](photo(5, 32, 24)), "PNG")
    pixels = np.asarray(decode_image(data).image)
    assert pixels.max() == 255  # values 256..1020 clip to white, as convert("RGB") does
    np.testing.assert_array_equal(pixels, reference_rgb(data))


def test_adobe_inverted_cmyk_jpeg_is_not_shown_as_a_negative() -> None:
    base = photo(6, 64, 48)
    data = encode(base.convert("CMYK"), "JPEG", quality=95)
    assert "adobe" in Image.open(io.BytesIO(data)).info  # Pillow writes Adobe, inverted
    decoded = np.asarray(decode_image(data).image, dtype=int)
    expected = np.asarray(base.convert("CMYK").convert("RGB"), dtype=int)
    assert np.abs(decoded - expected).mean() < 8


def test_alpha_is_dropped_not_composited() -> None:
    image = Image.new("RGBA", (16, 16), (200, 10, 10, 0))
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.image.getpixel((0, 0)) == (200, 10, 10)


def test_palette_with_transparency_decodes_without_warning() -> None:
    image = photo(7, 32, 24).convert("P")
    data = encode(image, "PNG", transparency=bytes(range(256)))
    decoded = decode_image(data)
    np.testing.assert_array_equal(np.asarray(decoded.image), reference_rgb(data))


def test_decompression_bomb_is_refused_from_the_header() -> None:
    # 10 billion pixels declared in a file of a few dozen bytes: Pillow's own guard.
    with pytest.raises(MediaError, match="decompression bomb"):
        decode_image(png_header(100_000, 100_000), source="bomb.png")


def test_pixel_limit_is_checked_before_any_pixel_is_decoded() -> None:
    # The file holds almost no pixel data: had the decoder run, the error would be
    # "truncated". 90 million pixels is also in the band where Pillow only warns.
    limits = MediaLimits(max_pixels=1_000_000)
    with pytest.raises(MediaError, match="over the limit of 1,000,000") as info:
        decode_image(png_header(9_500, 9_500), limits=limits, source="big.png")
    assert info.value.path == "big.png"
    assert "truncated" not in str(info.value)


def test_pixel_limit_is_inclusive() -> None:
    data = encode(photo(8, 64, 48), "PNG")
    assert decode_image(data, limits=MediaLimits(max_pixels=64 * 48)).width == 64
    with pytest.raises(MediaError, match="3,072 pixels, over the limit of 3,071"):
        decode_image(data, limits=MediaLimits(max_pixels=64 * 48 - 1))


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.95])
def test_truncated_png_is_a_media_error(keep: float) -> None:
    data = encode(photo(9, 320, 240), "PNG")
    with pytest.raises(MediaError, match=r"truncated|corrupt|not an image"):
        decode_image(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.95])
def test_truncated_jpeg_is_decoded_as_far_as_it_goes(keep: float) -> None:
    data = encode(photo(9, 320, 240), "JPEG")
    decoded = decode_image(data[: int(len(data) * keep)])
    assert decoded.truncated and decoded.image.size == (320, 240)
    assert not decode_image(data).truncated


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        b"id,text\n1,this is a CSV file, not a picture\n",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
    ],
    ids=["random", "text", "png-signature-only", "jpeg-signature-only"],
)
def test_bytes_that_are_not_an_image_are_a_media_error(data: bytes) -> None:
    with pytest.raises(MediaError):
        decode_image(data)


def test_empty_bytes_are_a_media_error() -> None:
    with pytest.raises(MediaError, match="empty"):
        decode_image(b"", source="empty.jpg")


def test_format_outside_the_allowed_list_is_refused() -> None:
    data = encode(photo(10, 32, 24), "TGA")
    with pytest.raises(MediaError, match="supported format"):
        decode_image(data)


def test_zero_size_image_is_a_media_error() -> None:
    with pytest.raises(MediaError):
        decode_image(png_header(0, 10))


def test_exif_orientation_is_reported_and_not_applied() -> None:
    image = photo(11, 80, 40)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    data = encode(image, "JPEG", quality=95, exif=exif)

    decoded = decode_image(data)

    assert decoded.orientation == 6
    assert (decoded.width, decoded.height) == (80, 40)
    assert decoded.image.size == (80, 40)  # not turned to 40x80
    np.testing.assert_array_equal(np.asarray(decoded.image), reference_rgb(data))


@pytest.mark.parametrize("tag", [None, 0, 9])
def test_missing_or_invalid_orientation_reads_as_one(tag: int | None) -> None:
    exif = Image.Exif()
    if tag is not None:
        exif[EXIF_ORIENTATION] = tag
    data = encode(photo(12, 32, 24), "JPEG", exif=exif)
    assert decode_image(data).orientation == 1


def solid_frames() -> list[Image.Image]:
    return [
        Image.new("RGB", (24, 16), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    ]


def test_animated_gif_decodes_its_first_frame() -> None:
    first, *rest = solid_frames()
    data = encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    decoded = decode_image(data)
    assert decoded.image.getpixel((5, 5)) == (255, 0, 0)


def test_animated_png_decodes_its_first_frame_and_frame_count_is_limited() -> None:
    first, *rest = solid_frames()
    data = encode(first, "PNG", save_all=True, append_images=rest, duration=100)
    assert decode_image(data).image.getpixel((5, 5)) == (255, 0, 0)
    with pytest.raises(MediaError, match="3 frames, over the limit of 2"):
        decode_image(data, limits=MediaLimits(max_frames=2))


@pytest.mark.parametrize(
    ("size", "file_format"),
    [((3000, 2000), "JPEG"), ((1000, 3000), "JPEG"), ((2000, 500), "PNG"), ((1201, 899), "JPEG")],
)
def test_reduced_decode_keeps_the_longest_side_within_max_side(
    size: tuple[int, int], file_format: str
) -> None:
    data = encode(photo(13, *size), file_format)
    decoded = decode_image(data)
    assert decoded.reduced
    assert (decoded.width, decoded.height) == size  # the stored size
    assert max(decoded.image.size) == HASH_SIDE
    assert decoded.image.mode == "RGB"
    width, height = decoded.image.size
    assert abs(width / height - size[0] / size[1]) < 0.01


def test_reduced_decode_respects_a_custom_max_side_and_none_means_full() -> None:
    data = encode(photo(14, 900, 600), "JPEG")
    assert decode_image(data, max_side=100).image.size == (100, 67)
    full = decode_image(data, max_side=None)
    assert full.image.size == (900, 600)
    assert not full.reduced
    np.testing.assert_array_equal(np.asarray(full.image), reference_rgb(data))


def test_small_image_is_not_reduced() -> None:
    decoded = decode_image(encode(photo(15, HASH_SIDE, 10), "PNG"))
    assert not decoded.reduced
    assert decoded.image.size == (HASH_SIDE, 10)


def test_invalid_max_side_is_a_user_error() -> None:
    with pytest.raises(UserError, match="max_side"):
        decode_image(encode(photo(16, 32, 24), "PNG"), max_side=0)


def test_read_media_returns_the_bytes(tmp_path: Path) -> None:
    data = encode(photo(17, 64, 48), "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert read_media(path) == data
    assert isinstance(decode_image(read_media(path)), DecodedImage)


def test_read_media_refuses_a_file_over_the_byte_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2000)
    limits = MediaLimits(max_bytes=1000)
    with pytest.raises(MediaError, match="larger than the limit of 1,000 bytes") as info:
        read_media(path, limits=limits)
    assert info.value.path == str(path)
    assert read_media(path, limits=MediaLimits(max_bytes=2000)) == b"x" * 2000
    with pytest.raises(MediaError, match="larger than the limit"):
        decode_image(b"x" * 2000, limits=limits)


def test_read_media_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(MediaError, match="not found") as info:
        read_media(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_read_media_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="directory"):
        read_media(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_read_media_refuses_a_pipe_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match="regular file"):
        read_media(fifo)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_read_media_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"data")
    path.chmod(0)
    try:
        with pytest.raises(MediaError, match="permission denied"):
            read_media(path)
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n"], ids=["empty", "text"])
def test_empty_and_text_files_are_media_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "file.jpg"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        decode_image(read_media(path), source=str(path))


@pytest.mark.parametrize("field", ["max_bytes", "max_pixels", "max_frames"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_must_be_positive(field: str, value: int) -> None:
    with pytest.raises(UserError, match=field):
        MediaLimits(**{field: value})


def test_default_limits() -> None:
    assert DEFAULT_LIMITS.max_bytes == 64 * 1024 * 1024
    assert DEFAULT_LIMITS.max_pixels == 100_000_000
