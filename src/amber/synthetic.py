"""Generated, benign, photo-like images for the demo, the tests and the benchmarks.

amber never ships real violent media; the harm in its examples is in the labels. These
images stand in for photos: a sky-to-ground gradient, 1/f ("pink") noise texture like
natural scenes have, and a few soft-edged shapes, all drawn from one seed, so every run
makes the same pixels.
"""

from __future__ import annotations

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
    cut is a clear change, as in filmed footage. Needs PyAV (``amber[video]``).
    """
    import av

    out_path = Path(path)
    margin_w, margin_h = width // 4, height // 4
    frames_per_scene = max(1, round(scene_seconds * fps))
    with av.open(str(out_path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        scene = np.zeros((0, 0, 3), np.uint8)
        for number in range(round(seconds * fps)):
            step = number % frames_per_scene
            if step == 0:
                shot = seed * 1000 + number // frames_per_scene
                scene = np.asarray(photo(shot, width + margin_w, height + margin_h))
            along = step / frames_per_scene
            x, y = round(along * margin_w), round(along * margin_h * 0.5)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(scene[y : y + height, x : x + width]), format="rgb24"
            )
            frame.pts = number
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path
