"""Hashing speed: amber's PDQ path next to plain pdqhash on the full-resolution image.

Generated photos (``amber.synthetic.photo``) of about 0.3, 3 and 12 megapixels
(640x480, 2000x1500, 4000x3000) are saved as JPEG (quality 90; ``--formats jpeg,png``
adds PNG) in a temporary folder, and every file is hashed three ways, in one process:

- ``plain``: what Meta's HMA does through python-threatexchange: ``Image.open(path)``,
  ``convert("RGB")``, ``numpy.asarray``, ``pdqhash.compute``, all at full resolution;
- ``amber PDQ``: amber's own path to the same single hash: ``read_media`` (bounded
  read), ``decode_image`` (JPEG decoded at 1/2-1/8 scale by libjpeg, resized to 768 px
  on PDQ's sampling grid), ``pdq_hash``;
- ``amber scan``: everything ``amber scan`` computes for one media file
  (``amber.hashing.hash_file`` with the query role): sha256, md5, and PDQ of every query
  view (the photo, plus a trimmed or straightened view when one is found) in all 8
  rotations and mirrors.

Timing is interleaved: each round visits every file once and runs the three methods on it
back to back, in an order that rotates from file to file and round to round, so that
background load hits them alike. A method's images/s is the file count over the sum of
each file's fastest time over the rounds. Drift is the Hamming distance between amber's
hash and the plain one, per file (the ``amber scan`` path's own ``original`` hash is
checked to be the ``amber PDQ`` hash).

``amber scan`` hashes media in a process pool (``concurrent.futures.ProcessPoolExecutor``,
one process per usable core, ``amber.hashing.worker_count``). The parallel table runs the
``amber scan`` hashing and the plain hash through such a pool (started and warmed before
the clock starts, so it shows steady throughput), alternating per round; the figure is the
best round.

Run from the repository root:

    python benchmarks/hashing.py [--images 12] [--rounds 5] [--formats jpeg]

Prints Markdown tables and writes ``benchmarks/results/hashing.json``.
``benchmarks/pdq_drift.py`` studies the drift further (panoramas, the PDQ conformance
images, the resize without grid alignment).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image

from amber.hashing import MediaFailure, MediaHashes, hash_file, hash_file_safely, worker_count
from amber.media import HASH_SIDE, decode_image, read_media
from amber.signals import Role
from amber.signals.pdq import hamming, pdq_hash, to_hex
from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "hashing.json"
#: (label, width, height) of the generated photos.
SIZES = (("0.3 MP", 640, 480), ("3 MP", 2000, 1500), ("12 MP", 4000, 3000))
FORMATS = {"jpeg": ("JPEG", ".jpg", {"quality": 90}), "png": ("PNG", ".png", {"compress_level": 6})}
#: Seeds of the photos: far from the seeds the tests and other benchmarks use.
FIRST_SEED = 70_000
METHODS = ("plain", "amber_pdq", "amber_scan")
LABELS = {"plain": "plain pdqhash", "amber_pdq": "amber PDQ", "amber_scan": "amber scan"}


@dataclass(frozen=True, slots=True)
class Hashed:
    """One file's PDQ hash and quality by one method."""

    digest: bytes
    quality: int


def hash_plain(path: str) -> Hashed:
    """PDQ the way HMA computes it: full-resolution decode, RGB array, ``pdqhash.compute``."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    bits, quality = pdqhash.compute(pixels)
    return Hashed(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality))


def hash_amber_pdq(path: str) -> Hashed:
    """PDQ the way amber computes it: bounded read, reduced decode, one hash."""
    decoded = decode_image(read_media(Path(path)), source=path)
    digest, quality = pdq_hash(decoded.image)
    return Hashed(digest, quality)


def hash_amber_scan(path: str) -> Hashed:
    """Every signal value ``amber scan`` computes for one file; returns its own PDQ hash."""
    hashes = hash_file(path, role=Role.query)
    value = hashes.original("pdq")
    if value is None or value.quality is None:
        raise RuntimeError(f"amber gave no PDQ hash for {path}")
    return Hashed(bytes.fromhex(value.value), value.quality)


HASHERS: dict[str, Callable[[str], Hashed]] = {
    "plain": hash_plain,
    "amber_pdq": hash_amber_pdq,
    "amber_scan": hash_amber_scan,
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One file: its hashes and each method's time in every round."""

    group: str
    name: str
    bytes: int
    plain_hash: str
    amber_hash: str
    plain_quality: int
    amber_quality: int
    drift: int
    seconds: dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class Row:
    """One group of files (a size and format), single process."""

    group: str
    n: int
    mean_mb: float
    plain_per_second: float
    amber_pdq_per_second: float
    amber_scan_per_second: float
    amber_pdq_ratio: float
    amber_scan_ratio: float
    drift_p50: int
    drift_p95: int
    drift_max: int
    n_quality80: int
    plain_quality_min: int
    amber_quality_min: int


@dataclass(frozen=True, slots=True)
class ParallelRow:
    """One group of files hashed in a process pool."""

    group: str
    n: int
    workers: int
    plain_per_second: float
    amber_scan_per_second: float
    amber_scan_ratio: float
    rounds_seconds: dict[str, list[float]]


def make_photos(folder: Path, *, images: int, formats: list[str]) -> list[tuple[str, Path]]:
    """Write the photos; (group, path) for each, in a fixed order."""
    files = []
    for label, width, height in SIZES:
        for index in range(images):
            image = photo(FIRST_SEED + index, width, height)
            for key in formats:
                file_format, suffix, options = FORMATS[key]
                path = folder / f"{width}x{height}-{index}{suffix}"
                image.save(path, file_format, **options)
                files.append((f"{file_format} {label}", path))
    return files


def measure(files: list[tuple[str, Path]], rounds: int) -> list[Sample]:
    """Hash every file with every method, ``rounds`` times, interleaved."""
    seconds: dict[Path, dict[str, list[float]]] = {p: {m: [] for m in METHODS} for _, p in files}
    results: dict[Path, dict[str, Hashed]] = {p: {} for _, p in files}
    for round_ in range(rounds):
        for index, (_group, path) in enumerate(files):
            shift = (round_ + index) % len(METHODS)
            for method in METHODS[shift:] + METHODS[:shift]:
                start = time.perf_counter()
                hashed = HASHERS[method](str(path))
                seconds[path][method].append(time.perf_counter() - start)
                results[path][method] = hashed
        print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
    samples = []
    for group, path in files:
        got = results[path]
        if got["amber_scan"] != got["amber_pdq"]:
            raise RuntimeError(f"amber scan's PDQ hash differs from amber's PDQ path: {path}")
        samples.append(
            Sample(
                group=group,
                name=path.name,
                bytes=path.stat().st_size,
                plain_hash=to_hex(got["plain"].digest),
                amber_hash=to_hex(got["amber_pdq"].digest),
                plain_quality=got["plain"].quality,
                amber_quality=got["amber_pdq"].quality,
                drift=hamming(got["plain"].digest, got["amber_pdq"].digest),
                seconds=seconds[path],
            )
        )
    return samples


def _percentile(values: list[int], q: float) -> int:
    return int(np.percentile(np.array(values), q, method="inverted_cdf"))


def summarise(group: str, samples: list[Sample]) -> Row:
    """One row: images/s from each file's best round, ratios to plain, drift, quality."""
    rate = {m: len(samples) / sum(min(s.seconds[m]) for s in samples) for m in METHODS}
    drifts = [s.drift for s in samples]
    return Row(
        group=group,
        n=len(samples),
        mean_mb=round(sum(s.bytes for s in samples) / len(samples) / 1e6, 2),
        plain_per_second=round(rate["plain"], 2),
        amber_pdq_per_second=round(rate["amber_pdq"], 2),
        amber_scan_per_second=round(rate["amber_scan"], 2),
        amber_pdq_ratio=round(rate["amber_pdq"] / rate["plain"], 2),
        amber_scan_ratio=round(rate["amber_scan"] / rate["plain"], 2),
        drift_p50=_percentile(drifts, 50),
        drift_p95=_percentile(drifts, 95),
        drift_max=max(drifts),
        n_quality80=sum(s.plain_quality >= 80 for s in samples),
        plain_quality_min=min(s.plain_quality for s in samples),
        amber_quality_min=min(s.amber_quality for s in samples),
    )


def _scan_one(path: str) -> MediaHashes | MediaFailure:
    """The per-file work of ``amber scan``'s pool (``amber.engine`` maps the same call)."""
    return hash_file_safely(path, Role.query)


def _plain_one(path: str) -> str:
    return to_hex(hash_plain(path).digest)


def measure_parallel(
    files: list[tuple[str, Path]], *, workers: int, rounds: int
) -> list[ParallelRow]:
    """Each group through one warm pool of ``workers`` processes, the two methods alternating."""
    jobs: dict[str, Callable[[str], object]] = {"plain": _plain_one, "amber_scan": _scan_one}
    groups = list(dict.fromkeys(g for g, _ in files))
    rows = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        warm = [str(files[0][1])] * workers * 2
        for job in jobs.values():
            list(pool.map(job, warm))
        for group in groups:
            paths = [str(p) for g, p in files if g == group]
            times: dict[str, list[float]] = {m: [] for m in jobs}
            for round_ in range(rounds):
                order = list(jobs) if round_ % 2 == 0 else list(reversed(jobs))
                for method in order:
                    start = time.perf_counter()
                    for result in pool.map(jobs[method], paths):
                        if isinstance(result, MediaFailure):
                            raise RuntimeError(f"{result.path}: {result.reason}")
                    times[method].append(time.perf_counter() - start)
            plain = len(paths) / min(times["plain"])
            scan = len(paths) / min(times["amber_scan"])
            rows.append(
                ParallelRow(
                    group=group,
                    n=len(paths),
                    workers=workers,
                    plain_per_second=round(plain, 2),
                    amber_scan_per_second=round(scan, 2),
                    amber_scan_ratio=round(scan / plain, 2),
                    rounds_seconds={m: [round(t, 4) for t in ts] for m, ts in times.items()},
                )
            )
            print(f"parallel: {group} done", file=sys.stderr)
    return rows


def table(rows: list[Row]) -> str:
    """The single-process rows as a Markdown table."""
    lines = [
        "| photos | n | plain pdqhash img/s | amber PDQ img/s | ratio | amber scan img/s | ratio "
        "| drift p50 | p95 | max | quality min plain / amber |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group} | {r.n} | {r.plain_per_second:.1f} | {r.amber_pdq_per_second:.1f} | "
            f"{r.amber_pdq_ratio:.1f}x | {r.amber_scan_per_second:.1f} | "
            f"{r.amber_scan_ratio:.1f}x | {r.drift_p50} | {r.drift_p95} | {r.drift_max} | "
            f"{r.plain_quality_min} / {r.amber_quality_min} |"
        )
    return "\n".join(lines)


def parallel_table(rows: list[ParallelRow]) -> str:
    """The pool rows as a Markdown table."""
    lines = [
        "| photos | n | processes | plain pdqhash img/s | amber scan img/s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group} | {r.n} | {r.workers} | {r.plain_per_second:.1f} | "
            f"{r.amber_scan_per_second:.1f} | {r.amber_scan_ratio:.1f}x |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where and on what the numbers were measured."""
    return describe()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="photos per size")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best kept)")
    parser.add_argument("--formats", default="jpeg", help="comma list of jpeg, png (default: jpeg)")
    parser.add_argument(
        "--workers", type=int, default=worker_count(), help="pool size for the parallel table"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        parser.error(f"--formats takes a comma list of {', '.join(FORMATS)}")
    if args.images < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("--images, --rounds and --workers must be positive")

    info = machine()
    with tempfile.TemporaryDirectory(prefix="amber-hashing-") as folder:
        print("generating photos…", file=sys.stderr)
        files = make_photos(Path(folder), images=args.images, formats=formats)
        for method in METHODS:  # imports, caches and the page cache before timing
            HASHERS[method](str(files[0][1]))
        samples = measure(files, args.rounds)
        parallel = measure_parallel(files, workers=args.workers, rounds=args.rounds)

    groups = list(dict.fromkeys(s.group for s in samples))
    rows = [summarise(g, [s for s in samples if s.group == g]) for g in groups]
    print(
        f"{info['cores']} cores ({info['cpu']}), Python {info['python']}, "
        f"numpy {info['numpy']}, Pillow {info['pillow']}, pdqhash {info['pdqhash']}; "
        f"amber reduces to {HASH_SIDE} px; best of {args.rounds} rounds"
    )
    print("\nOne process:\n")
    print(table(rows))
    print(f"\nProcess pool ({args.workers} processes, as amber scan):\n")
    print(parallel_table(parallel))

    result = {
        "command": " ".join(["python benchmarks/hashing.py", *(argv or sys.argv[1:])]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "parameters": {
            "images_per_size": args.images,
            "rounds": args.rounds,
            "formats": formats,
            "workers": args.workers,
            "max_side": HASH_SIDE,
            "methods": {
                "plain": "Image.open -> convert('RGB') -> numpy.asarray -> pdqhash.compute "
                "(full resolution, as HMA / python-threatexchange)",
                "amber_pdq": "amber.media.read_media -> decode_image (reduced) -> pdq_hash",
                "amber_scan": "amber.hashing.hash_file(role=query): sha256, md5, PDQ of every "
                "query view x 8 dihedral",
            },
            "speed": "files / sum over files of each file's fastest round",
            "drift": "Hamming distance, amber PDQ vs plain, every file",
        },
        "rows": [asdict(r) for r in rows],
        "parallel": [asdict(r) for r in parallel],
        "samples": [asdict(s) for s in samples],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
