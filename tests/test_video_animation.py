"""Animated GIF and WebP decoded as videos (``amber.video``, through Pillow) and hashed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from amber.errors import MediaError
from amber.signals import vpdq
from amber.signals.pdq import hamming, pdq_hash
from amber.synthetic import photo
from amber.video import VideoLimits, decode_video, is_animation


def animation(
    fmt: str, frames: int = 10, *, ms: int = 200, size: tuple[int, int] = (96, 64)
) -> bytes:
    """A benign animation: ``frames`` generated photos shown ``ms`` each."""
    images = [photo(seed, *size) for seed in range(frames)]
    out = io.BytesIO()
    if fmt == "GIF":
        images = [i.quantize(64) for i in images]
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=ms, loop=0)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_every_frame_with_its_time(fmt: str) -> None:
    data = animation(fmt)
    assert is_animation(data)

    decoded = decode_video(data)
    frames = list(decoded)

    assert [f.number for f in frames] == list(range(10))
    assert [f.timestamp for f in frames] == [round(0.2 * n, 3) for n in range(10)]
    assert {f.pixels.shape for f in frames} == {(64, 96, 3)}
    assert (decoded.width, decoded.height, decoded.truncated) == (96, 64, False)
    assert decoded.container == fmt.lower()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_sampled_by_time_at_reduced_size(fmt: str) -> None:
    frames = list(decode_video(animation(fmt), every=1.0, max_side=48))

    assert [(f.number, f.timestamp) for f in frames] == [(0, 0.0), (5, 1.0)]
    assert {f.pixels.shape for f in frames} == {(32, 48, 3)}


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_frames_hash_like_the_photos_they_show(fmt: str) -> None:
    features = vpdq.hash_video(animation(fmt)).features

    assert len(features) == 10
    for seed, feature in enumerate(features):
        shown, _ = pdq_hash(photo(seed, 96, 64))
        assert hamming(bytes.fromhex(feature.pdq_hex), shown) <= vpdq.DISTANCE_THRESHOLD, seed
    assert len({f.pdq_hex for f in features}) == 10


def test_a_still_gif_is_one_frame() -> None:
    out = io.BytesIO()
    photo(3, 64, 64).quantize(64).save(out, "GIF")
    frames = list(decode_video(out.getvalue()))
    assert len(frames) == 1 and frames[0].timestamp == 0.0


def test_a_frame_without_duration_is_shown_100_ms() -> None:
    frames = list(decode_video(animation("GIF", 3, ms=0)))
    assert [f.timestamp for f in frames] == [0.0, 0.1, 0.2]


def test_a_gif_cut_short_gives_the_frames_before() -> None:
    data = animation("GIF")
    decoded = decode_video(data[: len(data) * 2 // 3])
    frames = list(decoded)
    assert 0 < len(frames) < 10
    assert decoded.truncated
    whole = list(decode_video(data))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(frames[:-1], whole, strict=False))


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (VideoLimits(max_frames=5), "more than 5 frames, over the limit"),
        (VideoLimits(max_seconds=1), "runs past 1 s"),
        (VideoLimits(max_pixels=1000), "96x64, over the limit of 1,000 pixels"),
        (VideoLimits(max_bytes=100), "over the limit of 100"),
    ],
)
def test_each_limit_is_a_clear_error(limits: VideoLimits, says: str) -> None:
    with pytest.raises(MediaError, match=says) as caught:
        list(decode_video(animation("GIF"), limits=limits, source="post-1/media[0]"))
    assert "post-1/media[0]" in str(caught.value)


def test_bytes_that_only_start_like_a_gif_are_a_media_error() -> None:
    with pytest.raises(MediaError, match="GIF or WebP"):
        decode_video(b"GIF89a" + b"\x00" * 40)


def test_pillow_reads_the_generated_webp_as_animated() -> None:
    image = Image.open(io.BytesIO(animation("WEBP")))
    assert getattr(image, "is_animated", False) and getattr(image, "n_frames", 0) == 10


_SEEDS = {fmt: animation(fmt, 4, size=(32, 24)) for fmt in ("GIF", "WEBP")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10**6),
)
def test_damaged_animations_give_frames_or_a_media_error(
    fmt: str, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_SEEDS[fmt])
    for at, value in edits:
        data[at % len(data)] = value
    data = data[: max(12, cut % (len(data) + 1))]
    try:
        for frame in decode_video(bytes(data), limits=VideoLimits(max_decode_seconds=10)):
            assert frame.pixels.ndim == 3 and frame.pixels.shape[2] == 3
    except MediaError:
        pass
