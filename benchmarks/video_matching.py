"""Video matching recall and false matches on generated transforms: plain vPDQ beside amber.

``--clips`` benign generated clips (``amber.synthetic.video``: 480x270, 10 frames a second,
12 s, a scene cut every 4 s, the camera panning) are each banked, then altered as
re-uploads are (re-encoded at a low bit rate, half the frame rate, grey, letterboxed,
re-posted vertically, screen-recorded on a phone, a caption bar above, a watermark,
mirrored, cropped, its first 3 s cut, its first half only, put inside a compilation:
``amber.synthetic``'s edits) and each copy is looked up:

- **plain vPDQ**: the clip banked with every frame hashed at its stored size, the copy
  likewise; a match when 80 % of the copy's frames and 80 % of the banked frames match
  (``vpdq.match``/``is_match`` defaults, vPDQ's published operating point);
- **amber**: what ships: the clips banked with ``amber bank add`` (``Engine.banks``), the
  copy hashed as a post's media is (``Engine.hash_media``: the ``vpdq`` signal type) and
  matched by the engine's matcher (``Matcher.match``: shares of frames and segments).

Recall is the share of a transform's copies that match their own clip; false matches
count copies that match another clip (every copy against every other banked clip).

Run from the repository root:

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amber import open_engine
from amber.engine import Engine
from amber.hashing import MediaHashes
from amber.posts import media_post
from amber.signals import vpdq
from amber.synthetic import (
    Frames,
    boxed,
    captioned,
    cropped,
    frames_of,
    grey,
    mirrored,
    screen_recorded,
    video,
    watermarked,
    write_video,
)
from machine import describe

OUT = Path(__file__).resolve().parent / "results" / "video_matching.json"
SIZE = (480, 270)
FPS = 10


TRANSFORMS: dict[str, Callable[[Frames, Frames], tuple[Frames, int]]] = {
    "re-encoded at 150 kbit/s": lambda f, o: (f, FPS),
    "half the frame rate": lambda f, o: (f[::2], FPS // 2),
    "grey": lambda f, o: (grey(f), FPS),
    "letterboxed in 4:3": lambda f, o: (boxed(f, (480, 360)), FPS),
    "re-posted vertically (9:16)": lambda f, o: (boxed(f, (270, 480)), FPS),
    "caption bar above": lambda f, o: (captioned(f), FPS),
    "mirrored": lambda f, o: (mirrored(f), FPS),
    "cropped to 80 %, centred": lambda f, o: (cropped(f, 0.8), FPS),
    "screen-recorded on a phone": lambda f, o: (screen_recorded(f), FPS),
    "watermark in a corner": lambda f, o: (watermarked(f), FPS),
    "its first 3 s cut": lambda f, o: (f[3 * FPS :], FPS),
    "its first half only": lambda f, o: (f[: len(f) // 2], FPS),
    "inside a compilation": lambda f, o: (o[:60] + f + o[60:120], FPS),
}


def plain_match(copy: Path, banked: list[vpdq.Feature]) -> bool:
    return vpdq.is_match(vpdq.match(vpdq.hash_video(copy.read_bytes()).features, banked))


def amber_matches(engine: Engine, copy: Path) -> set[str]:
    """The banked clips (their file names) the engine matches ``copy`` to."""
    hashed = engine.hash_media(media_post(copy, copy.name, source="benchmark"))
    values = [h.values if isinstance(h, MediaHashes) else () for h in hashed]
    return {Path(m.entry_source).name for m in engine.matcher.match(values)}


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
        engine = open_engine(db=folder / "amber.db", vault=folder / "vault")
        engine.banks.create("clips", action="remove")
        engine.banks.add_files("clips", sources)
        for name, transform in TRANSFORMS.items():
            plain_hits = amber_hits = plain_false = amber_false = 0
            for n, source in enumerate(sources):
                frames, fps = transform(frames_of(source), other)
                copy = write_video(folder / f"copy{n}.mp4", frames, fps=fps, bit_rate=150_000)
                found = amber_matches(engine, copy)
                plain_hits += plain_match(copy, banks[n])
                amber_hits += source.name in found
                amber_false += len(found - {source.name})
                for m, bank in enumerate(banks):
                    if m != n:
                        plain_false += plain_match(copy, bank)
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
        engine.close()
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
