"""How far amber's reduced decode moves PDQ hashes, and how much time it saves.

For each image, PDQ is computed twice: from ``amber.media.decode_image`` with its default
reduced decode (JPEG draft mode, then a resize to ``HASH_SIDE``) and with
``max_side=None`` (full resolution, what python-threatexchange hashes). Drift is the
Hamming distance between the two, counted over images whose full-resolution quality is
at least 80 (the reference tolerance: at most 10 bits there). For comparison, the
"naive" columns reduce the same way but with a plain resize, without amber's alignment
to PDQ's sampling grid.

Images: generated photos (``amber.synthetic.photo``) saved as JPEG at 0.3, 3 and 12
megapixels and as a 3000x700 panorama, and as PNG at 0.3 and 3 megapixels, several seeds
each, and the PDQ conformance images in ``tests/data/pdq``. Run from the repository root:

    python benchmarks/pdq_drift.py [--seeds 8] [--repeat 3]

Prints a Markdown table and writes ``benchmarks/results/pdq_drift.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pdqhash
import PIL
from PIL import Image

from amber.media import HASH_FILTER, HASH_SIDE, MediaLimits, decode_image
from amber.signals.pdq import hamming, pdq_hash, to_hex
from amber.synthetic import photo

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "data" / "pdq"
RESULTS = ROOT / "benchmarks" / "results" / "pdq_drift.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: (group label, format, width, height) for the generated photos.
GENERATED = (
    ("JPEG 0.3 MP", "JPEG", 640, 480),
    ("JPEG 3 MP", "JPEG", 2000, 1500),
    ("JPEG 12 MP", "JPEG", 4000, 3000),
    ("JPEG 2 MP panorama", "JPEG", 3000, 700),
    ("PNG 0.3 MP", "PNG", 640, 480),
    ("PNG 3 MP", "PNG", 2000, 1500),
)
#: Large enough for a 12 MP PNG; the benchmark measures hashing, not the limits.
LIMITS = MediaLimits(max_bytes=256 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Sample:
    """One image's measurement."""

    group: str
    name: str
    width: int
    height: int
    bytes: int
    full_hash: str
    reduced_hash: str
    full_quality: int
    reduced_quality: int
    drift: int
    naive_drift: int
    full_seconds: float
    reduced_seconds: float


@dataclass(frozen=True, slots=True)
class Row:
    """Summary of one group of images."""

    group: str
    n: int
    n_quality80: int
    reduced_per_second: float
    full_per_second: float
    speedup: float
    drift_p50: int
    drift_p95: int
    drift_max: int
    naive_p50: int
    naive_max: int


def generated(seeds: int) -> list[tuple[str, str, bytes]]:
    """(group, name, encoded bytes) for every generated photo."""
    images = []
    for group, file_format, width, height in GENERATED:
        for seed in range(seeds):
            buffer = io.BytesIO()
            options = {"quality": 90} if file_format == "JPEG" else {"compress_level": 6}
            photo(seed, width, height).save(buffer, file_format, **options)
            images.append((group, f"photo({seed}, {width}, {height})", buffer.getvalue()))
    return images


def conformance() -> list[tuple[str, str, bytes]]:
    """(group, name, bytes) for the PDQ conformance images in tests/data/pdq."""
    paths = sorted(p for p in CONFORMANCE.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [("conformance", str(p.relative_to(CONFORMANCE)), p.read_bytes()) for p in paths]


def timed_hash(data: bytes, max_side: int | None, repeat: int) -> tuple[bytes, int, float]:
    """Hash decoded ``data``; the fastest of ``repeat`` runs of decode + hash."""
    best = float("inf")
    digest, quality = b"", 0
    for _ in range(repeat):
        start = time.perf_counter()
        decoded = decode_image(data, limits=LIMITS, max_side=max_side)
        digest, quality = pdq_hash(decoded.image)
        best = min(best, time.perf_counter() - start)
    return digest, quality, best


def naive_hash(data: bytes) -> bytes:
    """PDQ after a plain reduced decode: JPEG draft, then resize, no grid alignment."""
    with Image.open(io.BytesIO(data)) as image:
        longest = max(image.size)
        if longest <= HASH_SIDE:
            return pdq_hash(image.convert("RGB"))[0]
        scale = HASH_SIDE / longest
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if image.format == "JPEG":
            image.draft(None, target)
        return pdq_hash(image.convert("RGB").resize(target, HASH_FILTER))[0]


def measure(group: str, name: str, data: bytes, repeat: int) -> Sample:
    """Measure one image: both decodes, their hashes, the drift and the times."""
    full, full_quality, full_seconds = timed_hash(data, None, repeat)
    reduced, reduced_quality, reduced_seconds = timed_hash(data, HASH_SIDE, repeat)
    size = decode_image(data, limits=LIMITS, max_side=1)
    return Sample(
        group=group,
        name=name,
        width=size.width,
        height=size.height,
        bytes=len(data),
        full_hash=to_hex(full),
        reduced_hash=to_hex(reduced),
        full_quality=full_quality,
        reduced_quality=reduced_quality,
        drift=hamming(full, reduced),
        naive_drift=hamming(full, naive_hash(data)),
        full_seconds=full_seconds,
        reduced_seconds=reduced_seconds,
    )


def summarise(group: str, samples: list[Sample]) -> Row:
    """One table row; drift percentiles over images of full-resolution quality ≥ 80."""
    good = [s for s in samples if s.full_quality >= 80] or samples
    drifts = np.array([s.drift for s in good])
    naive = np.array([s.naive_drift for s in good])
    full = sum(s.full_seconds for s in samples)
    reduced = sum(s.reduced_seconds for s in samples)
    return Row(
        group=group,
        n=len(samples),
        n_quality80=sum(s.full_quality >= 80 for s in samples),
        reduced_per_second=len(samples) / reduced,
        full_per_second=len(samples) / full,
        speedup=full / reduced,
        drift_p50=int(np.percentile(drifts, 50, method="inverted_cdf")),
        drift_p95=int(np.percentile(drifts, 95, method="inverted_cdf")),
        drift_max=int(drifts.max()),
        naive_p50=int(np.percentile(naive, 50, method="inverted_cdf")),
        naive_max=int(naive.max()),
    )


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| images | n | q≥80 | reduced img/s | full img/s | speed-up "
        "| drift p50 | p95 | max | naive p50 | naive max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group} | {r.n} | {r.n_quality80} | {r.reduced_per_second:.1f} | "
            f"{r.full_per_second:.1f} | {r.speedup:.1f}x | {r.drift_p50} | {r.drift_p95} | "
            f"{r.drift_max} | {r.naive_p50} | {r.naive_max} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """Where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "pdqhash": pdqhash.__version__,
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="generated photos per size")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per image (best)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    print("generating photos…", file=sys.stderr)
    images = generated(args.seeds) + conformance()
    timed_hash(images[0][2], None, 1)  # warm up imports and caches before timing
    timed_hash(images[0][2], HASH_SIDE, 1)
    samples: list[Sample] = []
    for index, (group, name, data) in enumerate(images, 1):
        print(f"[{index}/{len(images)}] {group}: {name}", file=sys.stderr)
        samples.append(measure(group, name, data, args.repeat))

    groups = list(dict.fromkeys(s.group for s in samples))
    rows = [summarise(g, [s for s in samples if s.group == g]) for g in groups]
    rows.append(summarise("all", samples))
    info = machine()
    print(
        f"max_side={HASH_SIDE}, filter={HASH_FILTER.name}, JPEG draft on; "
        f"{info['cores']} cores, {info['cpu']}; Python {info['python']}, "
        f"Pillow {info['pillow']}, pdqhash {info['pdqhash']}, numpy {info['numpy']}"
    )
    print(table(rows))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(["python benchmarks/pdq_drift.py", *(argv or sys.argv[1:])]),
        "machine": info,
        "parameters": {
            "max_side": HASH_SIDE,
            "filter": HASH_FILTER.name,
            "seeds": args.seeds,
            "repeat": args.repeat,
            "drift_over": "images with full-resolution quality >= 80",
        },
        "rows": [asdict(r) for r in rows],
        "samples": [asdict(s) for s in samples],
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
