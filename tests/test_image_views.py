"""Robust-matching views: trimming, straightening, bank views, and the recall they buy."""

from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from amber.image_views import MIN_VIEW_SIDE, bank_views, content_box, query_views
from amber.synthetic import photo

THRESHOLD = 31
MIN_QUALITY = 50
#: Every name a view can have; they are storage keys, so the set is part of the contract.
VIEW_NAMES = {
    "original",
    "mirror",
    "trimmed",
    "straightened",
    *(f"crop{scale}" for scale in (95, 90, 85, 80, 75, 70, 65)),
    "turn-5",
    "turn+5",
}


def pdq(image: Image.Image) -> np.ndarray:
    """The PDQ bits of ``image`` as stored."""
    bits, _ = pdqhash.compute(np.asarray(image.convert("RGB")))
    return np.asarray(bits, dtype=bool)


def distance(a: Image.Image, b: Image.Image) -> int:
    """Hamming distance between the PDQ hashes of two images."""
    return int((pdq(a) != pdq(b)).sum())


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """``image`` re-encoded as JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def with_caption(
    image: Image.Image,
    *,
    top: int = 0,
    bottom: int = 0,
    bar: tuple[int, int, int] = (255, 255, 255),
    ink: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """``image`` with meme caption bars of ``top``/``bottom`` pixels, text on each."""
    width, height = image.size
    canvas = Image.new("RGB", (width, height + top + bottom), bar)
    canvas.paste(image, (0, top))
    draw = ImageDraw.Draw(canvas)
    for y0, size in ((0, top), (top + height, bottom)):
        if size:
            font = ImageFont.load_default(size=max(8, size // 2))
            draw.text(
                (width / 2, y0 + size / 2),
                "WHEN IT FINALLY WORKS",
                fill=ink,
                font=font,
                anchor="mm",
            )
    return canvas


def phone_screenshot(image: Image.Image) -> Image.Image:
    """``image`` inside app chrome: status bar, header with avatar and name, actions, text."""
    width = 540
    shown = image.resize((width, round(image.height * width / image.width)))
    canvas = Image.new("RGB", (width, 1170), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, width, 45), fill=(235, 235, 235))
    draw.text((20, 22), "9:41", fill=(0, 0, 0), font=ImageFont.load_default(size=20), anchor="lm")
    draw.ellipse((15, 60, 60, 105), fill=(200, 120, 40))
    draw.text(
        (75, 82), "someone.posts", fill=(0, 0, 0), font=ImageFont.load_default(size=20), anchor="lm"
    )
    canvas.paste(shown, (0, 120))
    y = 120 + shown.height + 20
    for k in range(3):
        draw.ellipse((20 + 55 * k, y, 55 + 55 * k, y + 35), outline=(0, 0, 0), width=3)
    draw.text(
        (20, y + 70),
        "1,234 likes",
        fill=(0, 0, 0),
        font=ImageFont.load_default(size=20),
        anchor="lm",
    )
    return canvas


def crop_centre(image: Image.Image, scale: float) -> Image.Image:
    """The central ``scale`` share of each side."""
    width, height = image.size
    crop_w, crop_h = round(width * scale), round(height * scale)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))


@pytest.fixture(scope="module")
def base() -> Image.Image:
    """A generated photo at the size amber hashes (longest side 512)."""
    return photo(3, 512, 384)


def trimmed_of(image: Image.Image) -> Image.Image:
    """The ``"trimmed"`` query view of ``image``; fails the test when there is none."""
    views = dict(query_views(image))
    assert "trimmed" in views, f"no trimmed view among {list(views)}"
    return views["trimmed"]


def test_trim_removes_a_solid_border(base: Image.Image) -> None:
    bordered = ImageOps.expand(base, (40, 25, 30, 50), fill=(200, 30, 90))
    trimmed = trimmed_of(bordered)
    assert trimmed.size == base.size
    assert distance(trimmed, base) <= THRESHOLD < distance(bordered, base)


def test_trim_removes_letterbox_bars(base: Image.Image) -> None:
    letterboxed = Image.new("RGB", (512, 576))
    letterboxed.paste(base, (0, 96))
    trimmed = trimmed_of(letterboxed)
    assert abs(trimmed.height - base.height) <= 2
    assert distance(trimmed, base) <= THRESHOLD < distance(letterboxed, base)


@pytest.mark.parametrize(
    ("top", "bottom", "bar", "ink"),
    [
        (80, 0, (255, 255, 255), (0, 0, 0)),
        (0, 70, (255, 255, 255), (0, 0, 0)),
        (64, 64, (0, 0, 0), (255, 255, 255)),
        (120, 0, (250, 220, 40), (20, 20, 20)),
    ],
)
def test_trim_removes_caption_bars_with_text(
    base: Image.Image, top: int, bottom: int, bar: tuple[int, int, int], ink: tuple[int, int, int]
) -> None:
    meme = jpeg(with_caption(base, top=top, bottom=bottom, bar=bar, ink=ink), 40)
    trimmed = trimmed_of(meme)
    assert abs(trimmed.height - base.height) <= 3
    assert distance(trimmed, base) <= THRESHOLD < distance(meme, base)


def test_trim_removes_screenshot_chrome(base: Image.Image) -> None:
    shot = phone_screenshot(base)
    shot = shot.resize((shot.width * 512 // shot.height, 512))  # as amber decodes it
    trimmed = trimmed_of(shot)
    assert distance(trimmed, base) <= THRESHOLD < distance(shot, base)


def test_trim_removes_a_blurred_backdrop(base: Image.Image) -> None:
    backdrop = base.resize((288 * 4 // 3 * 2, 512)).crop((0, 0, 288, 512))
    story = ImageEnhance.Brightness(backdrop.filter(ImageFilter.GaussianBlur(12))).enhance(0.7)
    shown = base.resize((288, 216))
    story.paste(shown, (0, 148))
    trimmed = trimmed_of(jpeg(story, 80))
    assert abs(trimmed.height - shown.height) <= 2
    assert distance(trimmed, shown) <= THRESHOLD < distance(story, shown)


@pytest.mark.parametrize("seed", range(12))
def test_photo_without_border_is_not_trimmed(seed: int) -> None:
    shapes = ((512, 384), (384, 512), (512, 512), (512, 288))
    image = photo(seed, *shapes[seed % len(shapes)])
    assert content_box(image) is None
    assert [name for name, _ in query_views(image)] == ["original"]


@pytest.mark.parametrize("degrees", [-7.0, 4.0])
@pytest.mark.parametrize("expand", [False, True])
def test_turned_copy_with_filled_corners_is_straightened(
    base: Image.Image, degrees: float, expand: bool
) -> None:
    turned = base.rotate(degrees, Image.Resampling.BICUBIC, expand=expand)
    views = dict(query_views(turned))
    assert "straightened" in views
    assert distance(views["straightened"], base) <= THRESHOLD < distance(turned, base)


def test_one_colour_image_gives_only_the_original() -> None:
    plain = Image.new("RGB", (300, 200), (90, 140, 200))
    assert [name for name, _ in query_views(plain)] == ["original"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 320),
    height=st.integers(1, 320),
    colour=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    kind=st.sampled_from(["plain", "bordered", "photo", "turned", "mostly-border"]),
    seed=st.integers(0, 1000),
)
def test_views_are_never_degenerate(
    width: int, height: int, colour: tuple[int, int, int], kind: str, seed: int
) -> None:
    image = Image.new("RGB", (width, height), colour)
    if kind != "plain" and width >= 8 and height >= 8:
        inner = photo(seed, width, height)
        if kind == "bordered":
            pad = (max(1, width // 8), max(1, height // 8))
            image.paste(inner.resize((width - 2 * pad[0], height - 2 * pad[1])), pad)
        elif kind == "mostly-border":
            image.paste(
                inner.resize((max(1, width // 10), max(1, height // 10))), (width // 2, height // 2)
            )
        elif kind == "turned":
            image = inner.rotate(6, expand=True, fillcolor=colour)
        else:
            image = inner
    for views in (query_views(image), bank_views(image)):
        names = [name for name, _ in views]
        assert names[0] == "original" and views[0][1] is image
        assert len(names) == len(set(names)) and set(names) <= VIEW_NAMES
        for name, view in views[1:]:
            assert min(view.size) >= MIN_VIEW_SIDE, (name, view.size)
    assert len(bank_views(image)) <= 12


@pytest.mark.parametrize(
    "image",
    [
        photo(11, 512, 384),
        ImageOps.expand(photo(12, 400, 300), 30, fill=(0, 0, 0)),
        photo(13, 512, 512).rotate(5, expand=True),
        photo(14, 40, 40),
    ],
    ids=["photo", "bordered", "turned", "tiny"],
)
def test_bank_views_are_deterministic_and_bounded(image: Image.Image) -> None:
    first, second = bank_views(image), bank_views(image.copy())
    assert [name for name, _ in first] == [name for name, _ in second]
    for (_, a), (_, b) in zip(first, second, strict=True):
        assert a.size == b.size and a.tobytes() == b.tobytes()
    assert 1 <= len(first) <= 12
    assert first[0] == ("original", image)


def hashes(views: list[tuple[str, Image.Image]], *, dihedral: bool) -> np.ndarray:
    """PDQ hashes (n, 256) of ``views`` with quality >= 50, all 8 orientations if asked."""
    rows: list[np.ndarray] = []
    for _, view in views:
        pixels = np.asarray(view.convert("RGB"))
        if dihedral:
            found, quality = pdqhash.compute_dihedral(pixels)
        else:
            bits, quality = pdqhash.compute(pixels)
            found = [bits]
        if quality >= MIN_QUALITY:
            rows.extend(np.asarray(bits, dtype=bool) for bits in found)
    return np.stack(rows)


def matches(bank: np.ndarray, query: np.ndarray) -> bool:
    """Whether any query hash is within the threshold of any bank hash."""
    distances = (query[:, None, :] != bank[None, :, :]).sum(axis=2)
    return bool((distances <= THRESHOLD).any())


def test_altered_copies_match_their_photo_and_no_other() -> None:
    photos = [
        photo(seed, *size)
        for seed, size in enumerate(
            [(512, 384), (384, 512), (512, 512), (512, 288), (512, 384)], start=20
        )
    ]
    banks = [hashes(bank_views(image), dihedral=False) for image in photos]
    for index, image in enumerate(photos):
        copies = {
            "caption": with_caption(image, top=image.height // 5),
            "border": ImageOps.expand(image, (30, 20, 30, 45), fill=(20, 90, 30)),
            "mirror": ImageOps.mirror(image),
            "mirror + caption": with_caption(ImageOps.mirror(image), bottom=60),
            "crop 80%": crop_centre(image, 0.8),
            "crop 90% + jpeg": jpeg(crop_centre(image, 0.9), 50),
            "turn 6": image.rotate(6, Image.Resampling.BICUBIC),
        }
        for name, copy in copies.items():
            query = hashes(query_views(copy), dihedral=True)
            assert matches(banks[index], query), f"photo {index}: {name} copy missed"
            for other, bank in enumerate(banks):
                if other != index:
                    assert not matches(bank, query), f"photo {index} {name} matched {other}"
