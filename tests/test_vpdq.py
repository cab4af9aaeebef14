"""vPDQ hashes of videos (amber.signals.vpdq) and the bounded decoder under them (amber.video).

Videos are generated in fixtures with PyAV (benign moving shapes); conformance is checked
against vPDQ's own reference output for ThreatExchange's smallest sample video
(tests/data/vpdq, with its notice).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from amber.errors import MediaError, SignalValueError, UserError  # noqa: E402
from amber.signals import vpdq  # noqa: E402
from amber.signals.pdq import hamming  # noqa: E402
from amber.video import VideoLimits, decode_video  # noqa: E402

DATA = Path(__file__).parent / "data" / "vpdq"

MakeVideo = Callable[..., Path]


def _scene(seed: int, number: int, width: int, height: int) -> np.ndarray:
    """Frame ``number`` of a benign generated scene: a few shapes drifting over a gradient
    (``seed`` picks the shapes and colours)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    base = rng.uniform(40, 200, 3)
    for c in range(3):
        image[..., c] = base[c] + 50 * np.sin((x * (c + 1) + y * (3 - c)) / (width / 3) + seed)
    for _ in range(6):
        cx, cy = rng.uniform(0, 1, 2)
        vx, vy = rng.uniform(-0.01, 0.01, 2)
        r = rng.uniform(0.08, 0.2) * min(width, height)
        colour = rng.uniform(0, 255, 3)
        px, py = (cx + vx * number) % 1 * width, (cy + vy * number) % 1 * height
        inside = (x - px) ** 2 + (y - py) ** 2 < r * r
        image[inside] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def make_video(tmp_path: Path) -> MakeVideo:
    """Write a generated video: ``seed`` picks the scene, then size, frame rate, length,
    bit rate and container (``mp4``: H.264 with the index up front; ``mkv``, ``webm``);
    ``still`` repeats the first frame."""

    def make(
        name: str,
        *,
        seed: int = 1,
        size: tuple[int, int] = (160, 120),
        fps: int = 10,
        seconds: float = 3.0,
        bit_rate: int = 400_000,
        container: str = "mp4",
        still: bool = False,
    ) -> Path:
        path = tmp_path / f"{name}.{container}"
        codec = "libvpx" if container == "webm" else "libx264"
        options = {"movflags": "faststart"} if container == "mp4" else {}
        with av.open(str(path), "w", options=options) as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = bit_rate
            stream.time_base = Fraction(1, fps)
            for number in range(round(seconds * fps)):
                pixels = _scene(seed, 0 if still else number * 30 // fps, 320, 240)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(*size)
                frame.pts = number
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return path

    return make


def test_hashes_agree_with_vpdq_reference_output() -> None:
    # vPDQ's regression test: same frame count, in order, each within distance 31.
    reference = vpdq.read_features(DATA / "test-padded-dimensions.txt")
    data = (DATA / "test-padded-dimensions.mp4").read_bytes()

    ours = vpdq.hash_video(data).features

    assert len(ours) == len(reference) == 150
    assert [f.frame_number for f in ours] == [f.frame_number for f in reference]
    distances = [
        hamming(bytes.fromhex(a.pdq_hex), bytes.fromhex(b.pdq_hex))
        for a, b in zip(ours, reference, strict=True)
    ]
    assert max(distances) <= vpdq.DISTANCE_THRESHOLD
    assert sorted(distances)[len(distances) // 2] <= 2  # measured: median 0, max 2
    assert [f.quality for f in ours] == [f.quality for f in reference]
    assert all(abs(a.timestamp - b.timestamp) < 0.001 for a, b in zip(ours, reference, strict=True))
    assert vpdq.is_match(vpdq.match(ours, reference))


def test_file_format_round_trips(tmp_path: Path) -> None:
    reference = vpdq.read_features(DATA / "test-padded-dimensions.txt")
    written = tmp_path / "out.txt"

    vpdq.write_features(written, reference)

    assert written.read_text() == (DATA / "test-padded-dimensions.txt").read_text()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0,100,abc,0.000", "expected frame_number"),
        ("0,101," + "0" * 64 + ",0.000", "expected frame_number"),
        ("1,100," + "0" * 64 + ",0.000\n1,100," + "0" * 64 + ",0.033", "does not follow"),
    ],
)
def test_bad_hash_file_names_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text + "\n")

    with pytest.raises(SignalValueError, match=problem) as caught:
        vpdq.read_features(path)

    assert f"{path}:" in str(caught.value)


@pytest.mark.parametrize("container", ["mp4", "mkv", "webm"])
def test_re_encoded_copy_matches_its_original_and_unrelated_video_does_not(
    make_video: MakeVideo, container: str
) -> None:
    original = make_video("original", seed=1, container=container)
    re_encoded = make_video(
        "re-encoded", seed=1, size=(112, 84), bit_rate=60_000, container=container
    )
    unrelated = make_video("unrelated", seed=2, container=container)
    banked = vpdq.hash_video(original.read_bytes()).features

    copy = vpdq.match(vpdq.hash_video(re_encoded.read_bytes(), seconds_per_hash=1).features, banked)
    other = vpdq.match(vpdq.hash_video(unrelated.read_bytes(), seconds_per_hash=1).features, banked)

    assert vpdq.is_match(copy, compared_percent=0), copy  # 1 frame a second against every frame
    assert copy.query_match_percent == 100.0
    assert other.query_match_percent == 0.0 and other.compared_match_percent == 0.0


def test_every_frame_and_one_a_second(make_video: MakeVideo) -> None:
    data = make_video("clip", fps=10, seconds=3).read_bytes()

    every = vpdq.hash_video(data)
    sampled = vpdq.hash_video(data, seconds_per_hash=1)

    assert [f.frame_number for f in every.features] == list(range(30))
    assert [f.frame_number for f in sampled.features] == [0, 10, 20]
    assert [f.timestamp for f in sampled.features] == [0.0, 1.0, 2.0]
    assert (every.width, every.height, every.truncated) == (160, 120, False)


def test_the_decoder_converts_only_the_sampled_frames_at_the_size_asked(
    make_video: MakeVideo,
) -> None:
    data = make_video("clip", fps=10, seconds=3, size=(320, 180)).read_bytes()

    frames = list(decode_video(data, every=1.0, max_side=64))

    assert [(f.number, f.timestamp) for f in frames] == [(0, 0.0), (10, 1.0), (20, 2.0)]
    assert {f.pixels.shape for f in frames} == {(36, 64, 3)}  # 16:9 kept, longer side 64
    full = list(decode_video(data, every=1.0))
    assert {f.pixels.shape for f in full} == {(180, 320, 3)}
    assert [f.pixels.shape for f in decode_video(data, every=1.0, max_side=999)] == [
        (180, 320, 3)
    ] * 3  # never enlarged


@pytest.mark.parametrize(("every", "max_side"), [(-1.0, None), (float("nan"), None), (1.0, 0)])
def test_bad_sampling_settings_are_refused(
    make_video: MakeVideo, every: float, max_side: int | None
) -> None:
    data = make_video("clip").read_bytes()
    with pytest.raises(UserError, match=r"sampling interval|max_side"):
        decode_video(data, every=every, max_side=max_side)


def test_hashes_of_reduced_frames_stay_near_the_full_size_ones(make_video: MakeVideo) -> None:
    data = make_video("clip", fps=10, seconds=4, size=(640, 360), bit_rate=1_500_000).read_bytes()

    full = vpdq.hash_video(data, seconds_per_hash=0.5).features
    reduced = vpdq.hash_video(data, seconds_per_hash=0.5, max_side=160).features

    assert [f.frame_number for f in reduced] == [f.frame_number for f in full]
    drift = sorted(
        hamming(bytes.fromhex(a.pdq_hex), bytes.fromhex(b.pdq_hex))
        for a, b in zip(full, reduced, strict=True)
    )
    assert drift[-1] <= vpdq.DISTANCE_THRESHOLD, drift  # measured here: 6 to 18 bits
    assert vpdq.is_match(vpdq.match(reduced, full))


def test_skipping_unreferenced_frames_still_samples_the_frame_due(make_video: MakeVideo) -> None:
    data = make_video("clip", fps=10, seconds=4, size=(320, 240), bit_rate=800_000).read_bytes()

    every = vpdq.hash_video(data).features
    skipped = vpdq.hash_video(data, seconds_per_hash=1, skip_unreferenced=True).features

    numbers = [f.frame_number for f in skipped]
    times = [f.timestamp for f in skipped]
    assert len(skipped) == 4 and numbers[0] == 0
    # frames just before each sample are decoded all the same: the sample is on time
    assert times == [0.0, 1.0, 2.0, 3.0], times
    by_time = {round(f.timestamp, 3): f for f in every}
    # the frame kept is the frame of that time in the full decode, hashed alike
    for f in skipped:
        same = by_time[round(f.timestamp, 3)]
        assert hamming(bytes.fromhex(f.pdq_hex), bytes.fromhex(same.pdq_hex)) <= 2


def test_dedupe_keeps_one_frame_of_a_still_and_one_a_scene(make_video: MakeVideo) -> None:
    still = make_video("still", fps=10, seconds=3, seed=5, still=True).read_bytes()
    moving = make_video("moving", fps=10, seconds=3, seed=5).read_bytes()

    assert len(vpdq.hash_video(still).features) == 30
    kept = vpdq.hash_video(still, dedupe=8).features
    assert [f.frame_number for f in kept] == [0]
    assert len(vpdq.hash_video(moving, dedupe=0).features) > 1  # frames that differ stay


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_truncated_video_is_hashed_as_far_as_it_goes(make_video: MakeVideo, container: str) -> None:
    data = make_video("clip", fps=10, seconds=3, container=container).read_bytes()
    whole = vpdq.hash_video(data).features

    cut = vpdq.hash_video(data[: len(data) * 2 // 3], source="cut.mp4")

    assert 10 < len(cut.features) < len(whole)
    # The frames before the cut are those of the whole file; the last packet before it
    # may be incomplete, so the frame it held is lost (frame numbers then shift by one).
    assert cut.features[:10] == whole[:10]
    at = {round(f.timestamp, 3): f.pdq_hex for f in whole}
    assert all(at[round(f.timestamp, 3)] == f.pdq_hex for f in cut.features[:-2])


def test_corrupt_bytes_after_the_header_keep_the_frames_before(make_video: MakeVideo) -> None:
    data = bytearray(make_video("clip", fps=10, seconds=3, container="mkv").read_bytes())
    whole = vpdq.hash_video(bytes(data)).features
    start = len(data) // 2
    data[start:] = bytes(len(data) - start)  # the second half zeroed

    damaged = vpdq.hash_video(bytes(data)).features

    assert 0 < len(damaged) <= len(whole)
    assert damaged[0] == whole[0]


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (VideoLimits(max_bytes=1000), "over the limit of 1,000"),
        (VideoLimits(max_seconds=2), "over the limit of 2 s"),
        (VideoLimits(max_pixels=160 * 119), "160x120, over the limit of 19,040 pixels"),
        (VideoLimits(max_frames=5), "more than 5 frames"),
        (VideoLimits(max_decode_seconds=1e-9), "decoding took over 1e-09 s"),
    ],
)
def test_each_limit_refuses_with_a_clear_error(
    make_video: MakeVideo, limits: VideoLimits, says: str
) -> None:
    data = make_video("clip", fps=10, seconds=3).read_bytes()

    with pytest.raises(MediaError, match=says) as caught:
        vpdq.hash_video(data, limits=limits, source="post-7/clip.mp4")

    assert str(caught.value).startswith("post-7/clip.mp4: ")


def test_duration_limit_holds_when_the_header_lies(make_video: MakeVideo) -> None:
    # The frames' own times are checked as they are decoded: a header declaring less
    # than the video holds cannot carry it past the limit.
    data = make_video("clip", fps=10, seconds=3, container="mkv").read_bytes()
    at = data.index(bytes.fromhex("4489"))  # Matroska Duration: 8-byte float, in ms
    assert data[at + 2] == 0x88 and struct.unpack(">d", data[at + 3 : at + 11])[0] == 3000.0
    lying = data[: at + 3] + struct.pack(">d", 500.0) + data[at + 11 :]
    assert decode_video(lying).error is None  # it opens: 0.5 s is under the limit

    with pytest.raises(MediaError, match="runs past 1 s"):
        list(decode_video(lying, limits=VideoLimits(max_seconds=1.0)))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "file is empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a video|not one amber decodes"),
        (b"\x00\x00\x00\x18ftypisom" + bytes(64), "not a video|no frame|no video stream"),
    ],
)
def test_not_a_video_is_a_media_error(data: bytes, says: str) -> None:
    with pytest.raises(MediaError, match=says):
        vpdq.hash_video(data, source="x")


def test_limits_must_be_positive() -> None:
    from amber.errors import UserError

    with pytest.raises(UserError, match="max_frames must be a positive number"):
        VideoLimits(max_frames=0)


def test_the_generated_clip_pans_within_a_scene_and_cuts_between_scenes(tmp_path: Path) -> None:
    from amber.synthetic import video

    clip = video(
        tmp_path / "clip.mp4", 3, width=320, height=180, fps=25, seconds=2, scene_seconds=1
    )
    features = vpdq.hash_video(clip.read_bytes()).features

    assert len(features) == 50
    assert min(f.quality for f in features) >= vpdq.QUALITY_THRESHOLD
    jumps = [
        hamming(bytes.fromhex(a.pdq_hex), bytes.fromhex(b.pdq_hex)) for a, b in pairwise(features)
    ]
    cut = jumps.pop(24)  # frame 24 to 25: the next scene
    assert min(jumps) > 0  # the camera moves: no two frames alike
    assert cut > 2 * max(jumps) and cut > 3 * vpdq.DISTANCE_THRESHOLD, (cut, jumps)


def _compilation(tmp_path: Path, parts: list[Path], size: tuple[int, int], fps: int) -> Path:
    """The frames of ``parts`` one after the other, re-encoded at ``size`` (H.264)."""
    path = tmp_path / "compilation.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 300_000
        number = 0
        for part in parts:
            for frame in decode_video(part.read_bytes()):
                shown = av.VideoFrame.from_ndarray(frame.pixels, format="rgb24").reformat(*size)
                shown.pts = number
                number += 1
                for packet in stream.encode(shown):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_clip_inside_a_compilation_is_found_with_its_times_in_both(tmp_path: Path) -> None:
    from amber.synthetic import video

    def clip(name: str, seed: int, seconds: float) -> Path:
        return video(
            tmp_path / f"{name}.mp4", seed, width=320, height=180, fps=10,
            seconds=seconds, scene_seconds=5,
        )  # fmt: skip

    banked = clip("banked", 1, 10)
    before, after = clip("before", 2, 6), clip("after", 3, 6)
    compilation = _compilation(tmp_path, [before, banked, after], (256, 144), 10)
    bank = vpdq.hash_video(banked.read_bytes()).features  # every frame

    query = vpdq.hash_video(compilation.read_bytes(), seconds_per_hash=1).features
    found = vpdq.segments(query, bank)

    assert len(found) == 1, found
    (seg,) = found
    assert 5.5 <= seg.query_start <= 7.0 and 14.0 <= seg.query_end <= 16.0, seg
    assert seg.compared_start <= 1.0 and seg.compared_end >= 8.0, seg
    whole = vpdq.match(query, bank)
    assert whole.compared_match_percent < vpdq.MATCH_PERCENT  # 1 a second: not every frame
    assert whole.query_match_percent < 50  # most of the compilation is something else
    assert vpdq.segments(vpdq.hash_video(before.read_bytes()).features, bank) == []


def _boxed(tmp_path: Path, source: Path, canvas: tuple[int, int], name: str) -> Path:
    """``source`` scaled to fit a black ``canvas`` (width, height), centred, re-encoded."""
    path = tmp_path / f"{name}.mp4"
    width, height = canvas
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height = canvas
        stream.pix_fmt = "yuv420p"
        for number, frame in enumerate(decode_video(source.read_bytes())):
            h, w = frame.pixels.shape[:2]
            scale = min(width / w, height / h)
            fit_w, fit_h = round(w * scale) // 2 * 2, round(h * scale) // 2 * 2
            picture = av.VideoFrame.from_ndarray(frame.pixels, format="rgb24")
            small = picture.reformat(fit_w, fit_h).to_ndarray(format="rgb24")
            board = np.zeros((height, width, 3), np.uint8)
            top, left = (height - fit_h) // 2, (width - fit_w) // 2
            board[top : top + fit_h, left : left + fit_w] = small
            shown = av.VideoFrame.from_ndarray(board, format="rgb24")
            shown.pts = number
            for packet in stream.encode(shown):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("canvas", "kind"), [((360, 640), "vertical re-post"), ((640, 640), "letterbox")]
)
def test_a_boxed_copy_matches_once_its_bars_are_trimmed(
    tmp_path: Path, canvas: tuple[int, int], kind: str
) -> None:
    from amber.synthetic import video

    original = video(tmp_path / "original.mp4", 4, width=640, height=360, fps=10, seconds=4)
    boxed = _boxed(tmp_path, original, canvas, kind.replace(" ", "-"))
    bank = vpdq.hash_video(original.read_bytes()).features

    plain = vpdq.match(vpdq.hash_video(boxed.read_bytes(), seconds_per_hash=1).features, bank)
    trimmed = vpdq.hash_video(boxed.read_bytes(), seconds_per_hash=1, trim=True).features

    assert plain.query_match_percent == 0.0, plain
    assert vpdq.match(trimmed, bank).query_match_percent == 100.0
    # trimming a frame without bars changes nothing
    assert vpdq.hash_video(original.read_bytes(), trim=True).features == bank
