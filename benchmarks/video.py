"""Video hashing: how fast amber hashes a clip, and how far its hashes drift from the plain way.

A benign generated clip (``amber.synthetic.video``: H.264 in MP4, 720p, 30 frames a
second, 60 s, a scene cut every 5 s, the camera panning slowly) is hashed on one core
(the process is pinned to one CPU) several ways, each timed the same number of times,
interleaved:

- **plain**: decode every frame at its full size to RGB and PDQ-hash one frame a second
  (what a vPDQ-style tool does when asked for one hash a second);
- **amber, stored size**: ``hash_video(seconds_per_hash=1)``: every frame is decoded (the
  codec needs them) but only the sampled ones are converted to RGB;
- **amber, reduced**: the same, sampled frames converted at ``--max-side`` pixels (FFmpeg's
  area averaging, while converting), the query setting;
- **amber, reduced + dedupe**: also drops a frame within ``--dedupe`` bits of the last kept;
- **amber, reduced, unreferenced frames skipped**: the codec skips the frames no other
  frame is built from, so each sample is the first decoded frame of its second;
- **... and loop filter skipped**: the codec also skips its deblocking filter;
- **amber's vpdq signal type, query side**: what a post's video costs
  (``VpdqSignal.compute(role=query)``: the setting above, each frame also hashed mirrored
  and, when it has bars, without them);
- **amber's vpdq signal type, bank side**: what ``amber bank add`` costs (4 frames a
  second at the stored size, each also as its central crops).

Drift: for each sampled second, the PDQ distance between the plain way's hash and each
amber way's hash of that second (the same frame, except when unreferenced frames are skipped).
Decoding alone (every frame, nothing converted) is timed too: no way that decodes every
frame can beat it.

Then it runs ``video_matching.py`` (``--clips``, 0 to skip) for the recall table.

Run from the repository root:

    python benchmarks/video.py [--seconds 60] [--runs 3] [--max-side 512] [--dedupe 8] [--clips 6]

Prints Markdown tables and writes ``benchmarks/results/video.json`` (and
``video_matching.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pdqhash

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amber.signals.base import Content, Role
from amber.signals.pdq import hamming
from amber.signals.vpdq import VideoHash, VpdqSignal, hash_video, to_feature
from amber.synthetic import video
from machine import describe

OUT = Path(__file__).resolve().parent / "results" / "video.json"


def plain(data: bytes, every: float) -> list[tuple[float, str]]:
    """Decode every frame at full size to RGB; PDQ-hash the first at or after each second."""
    import io

    out: list[tuple[float, str]] = []
    due = 0.0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="rgb24")
            t = float(frame.time)
            if t >= due:
                bits, _ = pdqhash.compute(np.ascontiguousarray(pixels))
                out.append((t, np.packbits(np.asarray(bits, np.uint8)).tobytes().hex()))
                due = (int(t // every) + 1) * every
    return out


def decode_only(data: bytes) -> int:
    """Decode every frame and convert none: the floor of any way that decodes them all."""
    import io

    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def signal_type(data: bytes, role: Role) -> VideoHash:
    """The ``vpdq`` signal type's values, its own frames as a ``VideoHash``."""
    values = VpdqSignal().compute(Content(data=data), role=role)
    features = tuple(f for v in values if (f := to_feature(v)) is not None)
    return VideoHash(features, 0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-side", type=int, default=384)
    parser.add_argument("--dedupe", type=int, default=8)
    parser.add_argument("--output", type=Path, default=OUT)
    parser.add_argument(
        "--clips",
        type=int,
        default=6,
        help="clips for the matching recall table (video_matching.py); 0 skips it",
    )
    args = parser.parse_args(argv)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        clip = video(Path(tmp) / "clip.mp4", 7, seconds=args.seconds)
        made = time.perf_counter() - started
        data = clip.read_bytes()
    print(f"clip: {len(data):,} bytes, 1280x720, {args.seconds:g} s, made in {made:.0f} s")

    ways: dict[str, Any] = {
        "plain (every frame to RGB at 1280x720)": lambda: plain(data, 1.0),
        "amber, stored size": lambda: hash_video(data, seconds_per_hash=1.0),
        f"amber, reduced to {args.max_side} px": lambda: hash_video(
            data, seconds_per_hash=1.0, max_side=args.max_side
        ),
        f"amber, reduced + dedupe {args.dedupe}": lambda: hash_video(
            data, seconds_per_hash=1.0, max_side=args.max_side, dedupe=args.dedupe
        ),
        "amber, reduced, unreferenced frames skipped": lambda: hash_video(
            data, seconds_per_hash=1.0, max_side=args.max_side, skip_unreferenced=True
        ),
        "amber, reduced, unreferenced frames and loop filter skipped": lambda: hash_video(
            data,
            seconds_per_hash=1.0,
            max_side=args.max_side,
            skip_unreferenced=True,
            skip_loop_filter=True,
        ),
        "amber's vpdq signal type, query side": lambda: signal_type(data, Role.query),
        "amber's vpdq signal type, bank side": lambda: signal_type(data, Role.bank),
    }
    floor: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Any] = {}
    for _ in range(args.runs):
        t = time.perf_counter()
        decode_only(data)
        floor.append(time.perf_counter() - t)
        for name, way in ways.items():
            t = time.perf_counter()
            results[name] = way()
            times[name].append(time.perf_counter() - t)

    reference = dict(results.pop(next(iter(ways))))
    rows = []
    name0 = next(iter(ways))
    median0 = statistics.median(times[name0])
    rows.append(
        {
            "way": name0,
            "seconds": round(median0, 3),
            "x_real_time": round(args.seconds / median0, 1),
            "frames_hashed": len(reference),
        }
    )
    print("\n| way | median s | x real time | frames hashed | drift median / p95 / max bits |")
    print("|---|---:|---:|---:|---|")
    decoding = statistics.median(floor)
    print(
        f"| decoding every frame, nothing converted | {decoding:.2f} | "
        f"{args.seconds / decoding:.1f} | 0 | - |"
    )
    print(f"| {name0} | {median0:.2f} | {args.seconds / median0:.1f} | {len(reference)} | - |")
    for name, hashed in results.items():
        median = statistics.median(times[name])
        # each hash against the plain way's hash of the same second (the frame sampled
        # for it may come a little later when unreferenced frames are skipped); a way that
        # hashes more than one frame a second is compared on the first of each second
        by_second = {int(t): h for t, h in reference.items()}
        firsts: dict[int, Any] = {}
        for f in sorted(hashed.features, key=lambda f: f.timestamp):
            firsts.setdefault(int(f.timestamp), f)
        drift = [
            hamming(bytes.fromhex(f.pdq_hex), bytes.fromhex(by_second[second]))
            for second, f in firsts.items()
            if second in by_second
        ]
        drift.sort()
        shown = (
            f"{statistics.median(drift):g} / {drift[int(0.95 * (len(drift) - 1))]} / {drift[-1]}"
            if drift
            else "-"
        )
        print(
            f"| {name} | {median:.2f} | {args.seconds / median:.1f} | "
            f"{len(hashed.features)} | {shown} |"
        )
        rows.append(
            {
                "way": name,
                "seconds": round(median, 3),
                "x_real_time": round(args.seconds / median, 1),
                "frames_hashed": len(hashed.features),
                "drift_bits": drift,
            }
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": describe(pyav=av.__version__, pinned_to_one_core=True),
                "clip": {"bytes": len(data), "seconds": args.seconds, "size": "1280x720"},
                "runs": args.runs,
                "times": times,
                "decoding_only_seconds": floor,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    if args.clips:
        import video_matching

        os.sched_setaffinity(0, cores)  # recall, not speed: every core
        print("\nMatching recall on generated re-uploads (benchmarks/video_matching.py):")
        video_matching.main(["--clips", str(args.clips)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
