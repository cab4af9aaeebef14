"""Generated, benign, photo-like images and videos for the demo, the tests and the
benchmarks, and the edits re-uploads make to videos.

amber never ships real violent media; the harm in its examples is in the labels. These
images stand in for photos: a sky-to-ground gradient, 1/f ("pink") noise texture like
natural scenes have, and a few soft-edged shapes, all drawn from one seed, so every run
makes the same pixels. ``video`` pans a camera across such photos, scene after scene;
``frames_of``, ``write_video`` and the edits (``boxed``, ``captioned``, ``cropped``,
``grey``, ``mirrored``) make the altered copies that matching is tested and measured on;
``filmed_at_an_angle`` is a photo's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def _pink_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Zero-mean noise whose power falls as 1/f, scaled to [-1, 1]."""
    spectrum = rng.normal(size=(height, width)) + 1j * rng.normal(size=(height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    field = np.real(np.fft.ifft2(spectrum / radius**1.1))
    field -= field.mean()
    peak = float(np.abs(field).max()) or 1.0
    return field / peak


def photo(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A photo-like RGB image drawn from ``seed``; different seeds give unrelated images."""
    if width < 8 or height < 8:
        raise ValueError(f"photo size {width}x{height} is too small; use at least 8x8")
    rng = np.random.default_rng(seed)
    # Draw at a modest working size, then resize: big outputs stay cheap to make.
    work_w, work_h = min(width, 512), min(height, 512)
    yy, xx = np.mgrid[0:work_h, 0:work_w].astype(np.float32)
    ny, nx = yy / work_h, xx / work_w

    sky, ground = rng.uniform(0, 255, size=(2, 3))
    horizon = rng.uniform(0.3, 0.7) + 0.1 * np.sin(nx * rng.uniform(2, 9) + rng.uniform(0, 6))
    blend = 1.0 / (1.0 + np.exp((ny - horizon) * rng.uniform(8, 30)))
    img = blend[..., None] * sky + (1 - blend[..., None]) * ground

    for _ in range(int(rng.integers(4, 10))):
        cy, cx = rng.uniform(0, 1, size=2)
        ry, rx = rng.uniform(0.05, 0.35, size=2)
        angle = rng.uniform(0, np.pi)
        dy, dx = ny - cy, nx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        if rng.random() < 0.5:
            dist = (u / rx) ** 2 + (v / ry) ** 2
        else:
            dist = np.maximum(np.abs(u / rx), np.abs(v / ry)) ** 2
        mask = np.clip((1.0 - dist) * rng.uniform(3, 12), 0, 1)[..., None]
        colour = rng.uniform(0, 255, size=3)
        img = img * (1 - mask) + colour * mask

    texture = _pink_noise(rng, work_h, work_w)[..., None] * rng.uniform(25, 60)
    img = np.clip(img + texture + rng.normal(0, 2.0, size=img.shape), 0, 255)
    out = Image.fromarray(img.astype(np.uint8), "RGB")
    if (work_w, work_h) != (width, height):
        out = out.resize((width, height), Image.Resampling.BICUBIC)
    return out


def video(
    path: str | Path,
    seed: int,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    seconds: float = 60.0,
    scene_seconds: float = 5.0,
    bit_rate: int = 2_000_000,
) -> Path:
    """Write a benign generated video (H.264 in MP4, ``faststart``) drawn from ``seed``.

    It is a sequence of scenes of ``scene_seconds``, each a generated photo that the camera
    pans across slowly, so consecutive frames are alike but never the same and each scene
    cut is a clear change, as in filmed footage.
    """
    margin_w, margin_h = width // 4, height // 4
    frames_per_scene = max(1, round(scene_seconds * fps))

    def frames() -> Iterator[np.ndarray]:
        scene = np.zeros((0, 0, 3), np.uint8)
        for number in range(round(seconds * fps)):
            step = number % frames_per_scene
            if step == 0:
                shot = seed * 1000 + number // frames_per_scene
                scene = np.asarray(photo(shot, width + margin_w, height + margin_h))
            along = step / frames_per_scene
            x, y = round(along * margin_w), round(along * margin_h * 0.5)
            yield scene[y : y + height, x : x + width]

    return write_video(
        path, frames(), width=width, height=height, fps=fps, bit_rate=bit_rate, faststart=True
    )


#: A video's frames, each height x width x 3 RGB uint8.
Frames = list[np.ndarray]


def frames_of(path: str | Path) -> Frames:
    """Every frame of a video file, decoded at its stored size (``amber.video``)."""
    from amber.video import decode_video

    return [f.pixels for f in decode_video(Path(path).read_bytes(), source=str(path))]


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    width: int | None = None,
    height: int | None = None,
    fps: int = 10,
    bit_rate: int = 800_000,
    faststart: bool = False,
) -> Path:
    """Encode ``frames`` (one at a time: a generator is never held in memory) as H.264 in
    MP4 at ``width`` x ``height`` (default: the first frame's size), sides rounded down to
    even as H.264 needs; ``faststart`` puts the index before the frames, as platforms
    serve videos."""
    import av

    stream_of = iter(frames)
    first = next(stream_of)
    out_path = Path(path)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(out_path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = (width or first.shape[1]) // 2 * 2
        stream.height = (height or first.shape[0]) // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        for number, pixels in enumerate(itertools.chain([first], stream_of)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame = frame.reformat(stream.width, stream.height)
            frame.pts = number
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path


def filmed_at_an_angle(image: Image.Image) -> Image.Image:
    """The photo on a screen filmed at an angle, on a dark background."""
    import cv2

    a = np.asarray(image)
    h, w = a.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = np.array(
        [[w * 0.12, h * 0.08], [w * 0.9, h * 0.15], [w * 0.86, h * 0.9], [w * 0.1, h * 0.84]],
        dtype=np.float32,
    )
    warped = cv2.warpPerspective(a, cv2.getPerspectiveTransform(src, dst), (w, h))
    return Image.fromarray(warped)


def resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """One frame scaled to ``width`` x ``height`` (FFmpeg's scaler)."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
    return np.asarray(frame.reformat(width, height).to_ndarray(format="rgb24"))


def boxed(frames: Sequence[np.ndarray], canvas: tuple[int, int]) -> Frames:
    """Each frame scaled to fit a black ``canvas`` (width, height), centred: letterboxed,
    pillarboxed, or re-posted vertically."""
    width, height = canvas
    out = []
    for pixels in frames:
        h, w = pixels.shape[:2]
        scale = min(width / w, height / h)
        fit_w, fit_h = round(w * scale) // 2 * 2, round(h * scale) // 2 * 2
        board = np.zeros((height, width, 3), np.uint8)
        top, left = (height - fit_h) // 2, (width - fit_w) // 2
        board[top : top + fit_h, left : left + fit_w] = resized(pixels, fit_w, fit_h)
        out.append(board)
    return out


def captioned(frames: Sequence[np.ndarray], text: str = "WATCH BEFORE THEY DELETE IT") -> Frames:
    """Each frame under a white caption bar a quarter of its height, with ``text`` in
    black on it (Pillow's own font)."""
    from PIL import ImageDraw, ImageFont

    h, w = frames[0].shape[:2]
    bar = Image.new("RGB", (w, h // 4), (255, 255, 255))
    font = ImageFont.load_default(size=max(8, h // 10))
    ImageDraw.Draw(bar).text((w / 2, h / 8), text, fill=(0, 0, 0), font=font, anchor="mm")
    top = np.asarray(bar)
    return [np.vstack([top, pixels]) for pixels in frames]


def cropped(frames: Sequence[np.ndarray], share: float) -> Frames:
    """The centre ``share`` of each frame, scaled back to the frame's size."""
    out = []
    for pixels in frames:
        h, w = pixels.shape[:2]
        ch, cw = round(h * share), round(w * share)
        top, left = (h - ch) // 2, (w - cw) // 2
        out.append(resized(pixels[top : top + ch, left : left + cw], w, h))
    return out


def grey(frames: Sequence[np.ndarray]) -> Frames:
    """Each frame in grey (ITU-R 601 luma), still three channels."""
    weights = np.array([0.299, 0.587, 0.114])
    return [np.repeat((p @ weights).astype(np.uint8)[..., None], 3, axis=2) for p in frames]


def mirrored(frames: Sequence[np.ndarray]) -> Frames:
    """Each frame mirrored left to right."""
    return [np.ascontiguousarray(p[:, ::-1]) for p in frames]


def screen_recorded(frames: Sequence[np.ndarray]) -> Frames:
    """Each frame as a phone's screen recording shows it: scaled into a 9:16 screen with
    a status bar above, the app's buttons below and a grey backdrop."""
    h, w = frames[0].shape[:2]
    width = (h * 9 // 16 + w) // 2 * 2  # a screen a little wider than the video is tall
    height = width * 16 // 9 // 2 * 2
    out = []
    for board in boxed(frames, (width, height)):
        board[(board == 0).all(axis=2)] = 48  # the app's backdrop, not black bars
        board[: height // 20] = 235  # status bar
        board[height // 80 : height // 30, width // 20 : width // 6] = 30  # the clock
        for k in range(4):  # buttons under the video
            x = width // 10 + k * width // 4
            board[height * 17 // 20 : height * 18 // 20, x : x + width // 8] = 200
        out.append(board)
    return out


def watermarked(frames: Sequence[np.ndarray]) -> Frames:
    """Each frame with an opaque white logo (a block with a dark bar in it) in its
    top-right corner, an eighth of its width."""
    out = []
    for pixels in frames:
        marked = pixels.copy()
        h, w = marked.shape[:2]
        side = w // 8
        marked[h // 20 : h // 20 + side // 2, w - side - w // 20 : w - w // 20] = 250
        marked[
            h // 20 + side // 6 : h // 20 + side // 3,
            w - side - w // 20 + side // 6 : w - w // 20 - side // 6,
        ] = 40
        out.append(marked)
    return out
