"""Bounded video decoding with PyAV (FFmpeg, bundled in PyAV's wheel).

A video a post carries is as untrusted as an image, and costs far more to decode: it can
declare hours of frames, a huge resolution, or be built to keep the decoder busy. Every
decode here is bounded by ``VideoLimits`` (bytes, declared and decoded duration,
resolution, frames decoded, seconds of decoding) and an exceeded limit is a
``MediaError`` that names it; frames are handed out one at a time, so memory stays at one
decoded frame whatever the length. A file that is corrupt or cut short part-way is
decoded as far as it goes (``DecodedFrames.truncated``); one with no decodable frame is a
``MediaError``.

Animated GIF and WebP are decoded with Pillow under the same limits (a frame's time is the
sum of the frame durations before it). PyAV is a dependency of amber; should it be missing,
video files keep their exact hashes and ``decode_video`` says how to add it.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from amber.errors import MediaError, UserError

if TYPE_CHECKING:
    import numpy as np

#: Containers the decoder is allowed to open (FFmpeg's demuxer names; ``mov`` covers MP4,
#: MOV, M4V and 3GP, ``matroska`` MKV and WebM). Everything else is refused before a
#: demuxer runs: FFmpeg opens many formats (playlists, image sequences, network
#: descriptors) that untrusted input should not reach.
#: With ``skip_unreferenced``, frames within this many seconds before a sample is due are
#: decoded all the same, so that the sample is the frame at its time, as without skipping.
NEAR_SAMPLE_SECONDS: Final = 0.15

CONTAINERS: Final = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"})

#: FFmpeg options for opening untrusted bytes: probe at most 5 MB / 5 s of data, and never
#: follow a reference to another file or protocol.
_OPEN_OPTIONS: Final = {
    "probesize": str(5_000_000),
    "analyzeduration": str(5_000_000),
    "protocol_whitelist": "",
}


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """How much one video may cost to decode.

    ``max_bytes`` bounds the file, ``max_seconds`` its duration (as declared and as
    decoded), ``max_pixels`` the width x height of its frames, ``max_frames`` the frames
    decoded, ``max_decode_seconds`` the wall-clock time spent decoding. Raises
    ``UserError`` when a limit is not positive.
    """

    max_bytes: int = 256 * 1024 * 1024
    max_seconds: float = 600.0
    max_pixels: int = 3840 * 2160
    max_frames: int = 40_000
    max_decode_seconds: float = 120.0

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_seconds", "max_pixels", "max_frames", "max_decode_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise UserError(f"video limit {name} must be a positive number, not {value!r}")


DEFAULT_VIDEO_LIMITS: Final = VideoLimits()


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its number in decode order (from 0), its time in seconds and its
    pixels (height x width x 3, RGB, uint8)."""

    number: int
    timestamp: float
    pixels: np.ndarray


@dataclass(slots=True)
class DecodedFrames:
    """The frames of a video, decoded lazily: iterate once. After iterating, ``truncated``
    is true when the data ended or broke before the video did (the frames before stand),
    and ``error`` says what the decoder reported then. ``seconds`` is the duration the
    file declares (``None`` when it declares none). ``close`` stops decoding early."""

    width: int
    height: int
    container: str
    _frames: Iterator[Frame] = field(repr=False)
    truncated: bool = False
    error: str | None = None
    seconds: float | None = None

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def close(self) -> None:
        """Stop decoding and let go of the decoder (frames not yet taken are not decoded)."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def is_video(data: bytes) -> bool:
    """Do ``data`` start like a container ``decode_video`` opens (MP4/MOV, MKV/WebM)?
    (GIF and WebP, which it also decodes, are images first.)"""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3"


def is_animation(data: bytes) -> bool:
    """Do ``data`` start like a GIF or a WebP (``decode_video`` decodes them with Pillow)?"""
    return data[:6] in (b"GIF87a", b"GIF89a") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def is_moving(data: bytes) -> bool:
    """Are ``data`` a video (``is_video``), or a GIF or WebP of more than one frame?"""
    if is_video(data):
        return True
    if not is_animation(data):
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1)) > 1
    except Exception:  # Pillow's plugins raise many kinds; the decoder will say what is wrong
        return True


def decode_video(
    data: bytes,
    *,
    limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
    source: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    every: float = 0.0,
    max_side: int | None = None,
    skip_unreferenced: bool = False,
    skip_loop_filter: bool = False,
) -> DecodedFrames:
    """Open ``data`` as a video (MP4/MOV, MKV/WebM; GIF and WebP, animated or not) and
    return its frames (the first video stream), decoded one at a time as they are iterated.

    ``every`` > 0 gives only the first frame at or after each multiple of ``every``
    seconds: the codec still decodes the others (later frames are built from them) but
    they are never converted to pixels. ``max_side`` scales the frames given so that
    neither side is longer (FFmpeg's area averaging, as the frame is converted to RGB);
    ``None`` keeps the stored size. ``skip_unreferenced`` has the codec skip the frames that
    no other frame is built from (most B-frames of H.264: about half the frames of the
    benchmark clip), except within ``NEAR_SAMPLE_SECONDS`` before a sample is due, so that
    the sample is still the first frame at or after its time.
    ``skip_loop_filter`` has the codec skip its deblocking filter (FFmpeg's
    ``skip_loop_filter=all``): faster, with block edges left in the pixels, which PDQ's
    64x64 reduction mostly averages away (``benchmarks/video.py`` measures both).

    ``source`` names the media in error messages. Raises ``MediaError`` when PyAV is not
    installed, the bytes are not a video in ``CONTAINERS``, or a limit is exceeded (while
    iterating, for the frames, decoded duration and decode time). A video that breaks
    part-way ends early and is marked ``truncated``; one with no decodable frame raises.
    """
    if not data:
        raise MediaError("file is empty", path=source)
    if len(data) > limits.max_bytes:
        raise MediaError(
            f"video is {len(data):,} bytes, over the limit of {limits.max_bytes:,}", path=source
        )
    if not every >= 0 or not math.isfinite(every):
        raise UserError(f"video sampling interval must be 0 or more seconds, not {every!r}")
    if max_side is not None and max_side < 1:
        raise UserError(f"video max_side must be a positive number of pixels, not {max_side!r}")
    sampling = _Sampling(every, max_side)
    if is_animation(data):
        return _animation(data, limits, source, clock, sampling)
    av = _pyav(source)
    started = clock()
    try:
        container = av.open(
            io.BytesIO(data),
            mode="r",
            options=dict(_OPEN_OPTIONS),
            metadata_errors="replace",  # a tag in Latin-1 is no reason to refuse the frames
        )
    except av.FFmpegError as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(
            f"not a video in a supported format (MP4/MOV, MKV/WebM): {why}", path=source
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:  # PyAV reading the header's tags
        raise MediaError(f"video header cannot be read: {exc}", path=source) from None
    try:
        names = set(container.format.name.split(","))
        if not names & CONTAINERS:
            raise MediaError(
                f"container {container.format.name!r} is not one amber decodes "
                "(MP4, MOV, MKV, WebM)",
                path=source,
            )
        if not container.streams.video:
            raise MediaError("has no video stream", path=source)
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a codec FFmpeg does not know
            raise MediaError(
                f"video stream's codec {getattr(stream, 'codec_tag', None) or '?'!r} is not "
                "one amber decodes",
                path=source,
            )
        if skip_unreferenced:
            stream.codec_context.skip_frame = "NONREF"
        if skip_loop_filter:  # read when the codec opens, at the first packet decoded
            stream.codec_context.options = {"skip_loop_filter": "all"}
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        _check_size(width, height, limits, source)
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > limits.max_seconds:
            raise MediaError(
                f"video declares {declared:.1f} s, over the limit of {limits.max_seconds:g} s",
                path=source,
            )
    except BaseException:
        container.close()
        raise
    decoded = DecodedFrames(width, height, container.format.name, iter(()), seconds=declared)
    decoded._frames = _frames(
        av, container, stream, decoded, limits, source, started, clock, sampling
    )
    return decoded


@dataclass(frozen=True, slots=True)
class _Sampling:
    every: float
    max_side: int | None

    def size(self, width: int, height: int) -> tuple[int, int] | None:
        """The size to convert a ``width`` x ``height`` frame to; ``None``: as stored."""
        if self.max_side is None or max(width, height) <= self.max_side:
            return None
        scale = self.max_side / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def next_due(self, given: float) -> float:
        """The time from which the next frame is given, after one given at ``given``."""
        if not self.every:
            return 0.0
        return (math.floor(given / self.every) + 1) * self.every


def _frames(
    av: Any,
    container: Any,
    stream: Any,
    decoded: DecodedFrames,
    limits: VideoLimits,
    source: str | None,
    started: float,
    clock: Callable[[], float],
    sampling: _Sampling,
) -> Iterator[Frame]:
    rate = float(stream.average_rate or stream.guessed_rate or 30)
    number = 0
    due = 0.0
    skipping = stream.codec_context.skip_frame == "NONREF" and sampling.every > 0
    try:
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                if skipping:  # decode every frame near a sample, so it is the one due
                    near = _seconds_of(packet, stream) >= due - NEAR_SAMPLE_SECONDS
                    stream.codec_context.skip_frame = "DEFAULT" if near else "NONREF"
                frames = packet.decode()
            except StopIteration:
                break
            except (av.FFmpegError, EOFError, ValueError) as exc:
                decoded.truncated, decoded.error = True, str(exc)
                break
            for frame in frames:
                if number >= limits.max_frames:
                    raise MediaError(
                        f"video has more than {limits.max_frames:,} frames, over the limit",
                        path=source,
                    )
                _check_size(frame.width, frame.height, limits, source)
                timestamp = float(frame.time) if frame.time is not None else number / rate
                if timestamp > limits.max_seconds:
                    raise MediaError(
                        f"video runs past {limits.max_seconds:g} s, over the limit", path=source
                    )
                if timestamp >= due:
                    size = sampling.size(frame.width, frame.height)
                    if size is None:
                        pixels = frame.to_ndarray(format="rgb24")
                    else:
                        pixels = frame.to_ndarray(
                            format="rgb24", width=size[0], height=size[1], interpolation="AREA"
                        )
                    yield Frame(number, timestamp, pixels)
                    due = sampling.next_due(timestamp)
                number += 1
                if clock() - started > limits.max_decode_seconds:
                    raise MediaError(
                        f"decoding took over {limits.max_decode_seconds:g} s, the limit",
                        path=source,
                    )
    finally:
        container.close()
    if number == 0:
        reason = f": {decoded.error}" if decoded.error else ""
        raise MediaError(
            f"corrupt or truncated video: no frame could be decoded{reason}", path=source
        )


#: Time a GIF or WebP frame is shown when it declares none (or 0 ms, which browsers show
#: as 100 ms).
_DEFAULT_FRAME_MS: Final = 100


def _animation(
    data: bytes,
    limits: VideoLimits,
    source: str | None,
    clock: Callable[[], float],
    sampling: _Sampling,
) -> DecodedFrames:
    """An animated GIF or WebP (or a still one: one frame), decoded with Pillow under the
    same limits as a video; a frame's time is the sum of the durations before it."""
    from PIL import Image

    started = clock()
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a GIF or WebP Pillow can open: {exc}", path=source) from None
    try:
        _check_size(image.width, image.height, limits, source)
    except BaseException:
        image.close()
        raise
    decoded = DecodedFrames(image.width, image.height, str(image.format).lower(), iter(()))
    decoded._frames = _animation_frames(image, decoded, limits, source, started, clock, sampling)
    return decoded


def _animation_frames(
    image: Any,
    decoded: DecodedFrames,
    limits: VideoLimits,
    source: str | None,
    started: float,
    clock: Callable[[], float],
    sampling: _Sampling,
) -> Iterator[Frame]:
    import numpy as np
    from PIL import Image

    timestamp, due, given, number = 0.0, 0.0, 0, 0
    try:
        while True:
            if timestamp > limits.max_seconds:
                raise MediaError(
                    f"animation runs past {limits.max_seconds:g} s, over the limit", path=source
                )
            pixels = None
            try:
                image.seek(number)
                if number >= limits.max_frames:
                    raise MediaError(
                        f"animation has more than {limits.max_frames:,} frames, over the limit",
                        path=source,
                    )
                _check_size(image.width, image.height, limits, source)
                image.load()  # WebP says a frame's duration only once it is decoded
                if timestamp >= due:
                    frame = image.convert("RGB")
                    size = sampling.size(frame.width, frame.height)
                    if size is not None:  # area averaging, as FFmpeg's for videos
                        frame = frame.resize(size, resample=Image.Resampling.BOX)
                    pixels = np.asarray(frame)
            except EOFError:  # Pillow's end of the frames
                break
            except MediaError:
                raise
            except Exception as exc:
                # Pillow's plugins report a damaged frame with many exception types
                # (OSError, IndexError, struct.error, SyntaxError…): the frames before stand.
                decoded.truncated, decoded.error = True, f"{type(exc).__name__}: {exc}"
                break
            if pixels is not None:
                yield Frame(number, round(timestamp, 3), pixels)
                given += 1
                due = sampling.next_due(timestamp)
            timestamp += float(image.info.get("duration") or _DEFAULT_FRAME_MS) / 1000
            number += 1
            if clock() - started > limits.max_decode_seconds:
                raise MediaError(
                    f"decoding took over {limits.max_decode_seconds:g} s, the limit", path=source
                )
    finally:
        image.close()
    if given == 0:
        reason = f": {decoded.error}" if decoded.error else ""
        raise MediaError(
            f"corrupt or truncated animation: no frame could be decoded{reason}", path=source
        )


def _seconds_of(packet: Any, stream: Any) -> float:
    """A packet's presentation time in seconds (its decode time, or 0, when it has none)."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None or stream.time_base is None:
        return 0.0
    return float(stamp * stream.time_base)


def _check_size(width: int, height: int, limits: VideoLimits, source: str | None) -> None:
    if width < 1 or height < 1:
        raise MediaError(f"video frames have no pixels ({width}x{height})", path=source)
    if width * height > limits.max_pixels:
        raise MediaError(
            f"video is {width}x{height}, over the limit of {limits.max_pixels:,} pixels a frame",
            path=source,
        )


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


def _pyav(source: str | None) -> Any:
    try:
        import av
    except ImportError:
        raise MediaError(
            "video decoding needs PyAV (a dependency of amber): pip install av", path=source
        ) from None
    av.logging.set_level(None)
    return av
