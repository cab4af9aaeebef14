"""Video matching recall and false matches on generated transforms: plain vPDQ beside amber.

``--clips`` benign generated clips (``amber.synthetic.video``: 480x270, 10 frames a second,
12 s, a scene cut every 4 s, the camera panning) are each banked (every frame hashed at
its stored size), then altered as re-uploads are (re-encoded at a low bit rate, half the
frame rate, grey, letterboxed, re-posted vertically, a caption bar above, mirrored,
cropped, cut to its first half, put inside a compilation) and each copy is looked up:

- **plain vPDQ**: the copy's every frame at its stored size, a match when 80 % of the
  copy's frames and 80 % of the banked frames match (``vpdq.match``/``is_match``
  defaults, vPDQ's published operating point);
- **amber**: the copy hashed one frame a second, reduced to 512 px, bars trimmed
  (``hash_video(seconds_per_hash=1, max_side=512, trim=True)``), a match when 80 % of
  its frames match the banked clip or a segment of at least 3 s plays it
  (``vpdq.segments``).

Recall is the share of a transform's copies that match their own clip; false matches
count copies that match another clip (every copy against every other banked clip).

Run from the repository root (needs ``pip install -e '.[video]'``):

    python benchmarks/video_matching.py [--clips 6]

Prints a Markdown table and writes ``benchmarks/results/video_matching.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amber.signals import vpdq
from amber.synthetic import video
from amber.video import decode_video
from machine import describe

OUT = Path(__file__).resolve().parent / "results" / "video_matching.json"
SIZE = (480, 270)
FPS = 10

Frames = list[np.ndarray]


def frames_of(path: Path) -> Frames:
    return [f.pixels for f in decode_video(path.read_bytes())]


def encode(path: Path, frames: Frames, *, fps: int = FPS, bit_rate: int = 800_000) -> Path:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width // 2 * 2, height // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        for number, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame = frame.reformat(stream.width, stream.height)
            frame.pts = number
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(width, height)
    return np.asarray(frame.to_ndarray(format="rgb24"))


def boxed(frames: Frames, canvas: tuple[int, int]) -> Frames:
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


def captioned(frames: Frames) -> Frames:
    out = []
    for pixels in frames:
        h, w = pixels.shape[:2]
        bar = np.full((h // 4, w, 3), 255, np.uint8)
        for k in range(6):  # dark blocks where the caption's words would be
            x = 20 + k * (w - 40) // 6
            bar[h // 12 : h // 6, x : x + (w - 40) // 8] = 20
        out.append(np.vstack([bar, pixels]))
    return out


def cropped(frames: Frames, share: float) -> Frames:
    out = []
    for pixels in frames:
        h, w = pixels.shape[:2]
        ch, cw = round(h * share), round(w * share)
        top, left = (h - ch) // 2, (w - cw) // 2
        out.append(resized(np.ascontiguousarray(pixels[top : top + ch, left : left + cw]), w, h))
    return out


def grey(frames: Frames) -> Frames:
    return [
        np.repeat((p @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None], 3, axis=2)
        for p in frames
    ]


TRANSFORMS: dict[str, Callable[[Frames, Frames], tuple[Frames, int]]] = {
    "re-encoded at 150 kbit/s": lambda f, o: (f, FPS),
    "half the frame rate": lambda f, o: (f[::2], FPS // 2),
    "grey": lambda f, o: (grey(f), FPS),
    "letterboxed in 4:3": lambda f, o: (boxed(f, (480, 360)), FPS),
    "re-posted vertically (9:16)": lambda f, o: (boxed(f, (270, 480)), FPS),
    "caption bar above": lambda f, o: (captioned(f), FPS),
    "mirrored": lambda f, o: ([np.ascontiguousarray(p[:, ::-1]) for p in f], FPS),
    "cropped to 80 %, centred": lambda f, o: (cropped(f, 0.8), FPS),
    "its first half only": lambda f, o: (f[: len(f) // 2], FPS),
    "inside a compilation": lambda f, o: (o[:60] + f + o[60:120], FPS),
}


def plain_match(copy: Path, banked: list[vpdq.Feature]) -> bool:
    return vpdq.is_match(vpdq.match(vpdq.hash_video(copy.read_bytes()).features, banked))


def amber_match(query: list[vpdq.Feature], banked: list[vpdq.Feature]) -> bool:
    share = vpdq.match(query, banked).query_match_percent
    return share >= vpdq.MATCH_PERCENT or bool(vpdq.segments(query, banked))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = [
            video(folder / f"clip{n}.mp4", 100 + n, width=SIZE[0], height=SIZE[1], fps=FPS,
                  seconds=12, scene_seconds=4)
            for n in range(args.clips)
        ]  # fmt: skip
        other = frames_of(
            video(folder / "other.mp4", 99, width=SIZE[0], height=SIZE[1], fps=FPS, seconds=12)
        )
        banks = [list(vpdq.hash_video(p.read_bytes()).features) for p in sources]
        for name, transform in TRANSFORMS.items():
            plain_hits = amber_hits = plain_false = amber_false = 0
            for n, source in enumerate(sources):
                frames, fps = transform(frames_of(source), other)
                copy = encode(folder / f"copy{n}.mp4", frames, fps=fps, bit_rate=150_000)
                query = list(
                    vpdq.hash_video(
                        copy.read_bytes(), seconds_per_hash=1, max_side=512, trim=True
                    ).features
                )
                plain_hits += plain_match(copy, banks[n])
                amber_hits += amber_match(query, banks[n])
                for m, bank in enumerate(banks):
                    if m != n:
                        plain_false += plain_match(copy, bank)
                        amber_false += amber_match(query, bank)
            rows.append(
                {
                    "transform": name,
                    "plain_recall": plain_hits / len(sources),
                    "amber_recall": amber_hits / len(sources),
                    "plain_false": plain_false,
                    "amber_false": amber_false,
                    "pairs": len(sources) * (len(sources) - 1),
                }
            )
            print(rows[-1], flush=True)
    print("\n| transform | plain vPDQ recall | amber recall | false matches plain / amber |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['transform']} | {r['plain_recall']:.0%} | {r['amber_recall']:.0%} | "
            f"{r['plain_false']} / {r['amber_false']} of {r['pairs']} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"machine": describe(pyav=av.__version__), "clips": args.clips, "rows": rows},
                   indent=2) + "\n"
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
