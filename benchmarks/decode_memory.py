"""Peak memory of decoding one 100-megapixel image, and of four decoded at once.

Small files that declare 10000 x 10000 pixels (one colour with a little noise, so they
stay at a few kilobytes: the kind of file an attacker sends) are written as WebP, PNG,
GIF and JPEG to a temporary folder. Each is then hashed by ``amber.hashing.hash_file``
(read, decode, every built-in signal type) in a fresh Python process, and the process's
peak resident set (``ru_maxrss``) is reported above the baseline measured in the same
process just before. The ``4 x WebP`` row hashes four different WebPs from four threads at
once in one process, as the HTTP service would for four concurrent uploads.

Run from the repository root, against the tree to measure:

    PYTHONPATH=src python benchmarks/decode_memory.py

Prints a Markdown table and writes ``benchmarks/results/decode_memory.json``
(``docs/benchmarks.md`` has the figures before and after issue 12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 10_000
FORMATS = {"webp": "WEBP", "png": "PNG", "gif": "GIF", "jpg": "JPEG"}

CHILD = """
import resource, sys, threading
from pathlib import Path
from amber.hashing import hash_file_safely
from amber.signals import Role
paths = sys.argv[1:]
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = peak()
results = [None] * len(paths)
def run(i, p): results[i] = hash_file_safely(p, Role.query)
threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(paths)]
for t in threads: t.start()
for t in threads: t.join()
outcome = [getattr(r, "reason", None) or getattr(r, "undecoded", None) or "hashed"
           for r in results]
print(peak() - base, "|".join(outcome))
"""


def make(folder: Path, suffix: str, seed: int) -> Path:
    """A 10000 x 10000 image of one colour with a sparse scatter of dots."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (SIDE, SIDE), tuple(int(c) for c in rng.integers(0, 255, 3)))
    for _ in range(200):
        x, y = (int(v) for v in rng.integers(0, SIDE, 2))
        image.putpixel((x, y), (255, 255, 255))
    path = folder / f"big-{seed}.{suffix}"
    options = {"quality": 50} if suffix in ("jpg", "webp") else {}
    image.save(path, FORMATS[suffix], **options)
    return path


def measure(paths: list[Path]) -> tuple[int, str]:
    """Peak RSS growth (bytes) of hashing ``paths`` at once in a new process, and how
    each ended."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    grown, outcome = done.stdout.split(" ", 1)
    return int(grown), outcome.strip()


def make_all(folder: Path) -> None:
    """Write the test files (run in a process of its own: see ``main``)."""
    for suffix in FORMATS:
        make(folder, suffix, 1)
    for seed in (2, 3, 4):
        make(folder, "webp", seed)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Linux carries a process's peak RSS across exec, so the files are made in another
        # process: this one stays small and its children's peaks start from their own.
        subprocess.run([sys.executable, __file__, "--make", tmp], check=True)
        files = {suffix: folder / f"big-1.{suffix}" for suffix in FORMATS}
        webps = [files["webp"], *(folder / f"big-{s}.webp" for s in (2, 3, 4))]
        cases = [(f"1 x {s.upper()}", [p]) for s, p in files.items()]
        cases.append(("4 x WEBP at once", webps))
        for name, paths in cases:
            grown, outcome = measure(paths)
            size = sum(p.stat().st_size for p in paths) // len(paths)
            rows.append(
                {"case": name, "file_bytes": size, "peak_mib": grown / 2**20, "outcome": outcome}
            )
    print("| case | file size | peak RSS above baseline | outcome |")
    print("| --- | ---: | ---: | --- |")
    for row in rows:
        print(
            f"| {row['case']} | {row['file_bytes'] / 1024:.0f} KiB | {row['peak_mib']:.0f} MiB "
            f"| {row['outcome'][:90]} |"
        )
    out = Path(__file__).parent / "results" / "decode_memory.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make"]:
        make_all(Path(sys.argv[2]))
    else:
        main()
