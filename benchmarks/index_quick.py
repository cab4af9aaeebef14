"""Quick measurement of the PDQ index next to faiss brute force (not a test).

    python benchmarks/index_quick.py [--rows 1000000] [--queries 2000] [--radius 31]

Builds ``rows`` hashes (90% uniform random, 10% clustered around prototypes), builds an
amber ``PdqIndex`` and a faiss ``IndexBinaryFlat``, then, each in a fresh process so
resident memory is comparable, opens the index and times single-query searches
(half near-duplicates of stored hashes, half random). faiss runs on one thread unless
``--faiss-threads`` says otherwise. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt


def make_hashes(rows: int, seed: int) -> npt.NDArray[np.uint8]:
    """Uniform random hashes plus clusters (prototypes with 0..30 bits flipped)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (rows, 32), dtype=np.uint8)
    clustered = rows // 10
    prototypes = rng.integers(0, 256, (max(1, clustered // 100), 32), dtype=np.uint8)
    members = prototypes[rng.integers(0, len(prototypes), clustered)]
    bits = np.unpackbits(members, axis=1)
    flips = rng.random(bits.shape) < (rng.integers(0, 31, (clustered, 1)) / 256)
    hashes[:clustered] = np.packbits(bits ^ flips, axis=1)
    return hashes


def make_queries(hashes: npt.NDArray[np.uint8], count: int, seed: int) -> npt.NDArray[np.uint8]:
    """Half stored hashes moved by 0..40 bits, half random hashes."""
    rng = np.random.default_rng(seed)
    picked = hashes[rng.integers(0, len(hashes), count)]
    bits = np.unpackbits(picked, axis=1)
    flips = rng.random(bits.shape) < (rng.integers(0, 41, (count, 1)) / 256)
    queries = np.packbits(bits ^ flips, axis=1)
    queries[count // 2 :] = rng.integers(0, 256, (count - count // 2, 32), dtype=np.uint8)
    return rng.permutation(queries)


def resident_mb() -> float:
    """This process's resident set size in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    engine: str, folder: Path, queries_path: Path, radius: int, threads: int
) -> dict[str, float]:
    """Open one engine's index and time single queries (run in a fresh process)."""
    import faiss

    from amber.index import PdqIndex

    faiss.omp_set_num_threads(threads)
    queries = np.load(queries_path)
    before = resident_mb()
    started = time.perf_counter()
    if engine == "amber":
        index = PdqIndex.open(folder)

        def search(query: npt.NDArray[np.uint8]) -> int:
            return len(index.search(query, radius)[0])
    else:
        flat = faiss.read_index_binary(str(folder / "faiss.index"))

        def search(query: npt.NDArray[np.uint8]) -> int:
            limits, _, _ = flat.range_search(query, radius + 1)  # faiss: distance < radius
            return int(limits[1])

    opened = time.perf_counter() - started
    after_open = resident_mb()
    for query in queries[:100]:
        search(query[None])
    timings, matches = [], 0
    for query in queries:
        started = time.perf_counter()
        matches += search(query[None])
        timings.append(time.perf_counter() - started)
    milliseconds = np.array(timings) * 1000
    return {
        "open_s": opened,
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "rss_open_mb": after_open - before,
        "rss_after_mb": resident_mb() - before,
        "matches": matches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--radius", type=int, default=31)
    parser.add_argument("--faiss-threads", type=int, default=1)
    parser.add_argument("--measure", nargs=3, metavar=("ENGINE", "FOLDER", "QUERIES"))
    args = parser.parse_args()
    if args.measure:
        engine, folder, queries_path = args.measure
        print(
            json.dumps(
                measure(engine, Path(folder), Path(queries_path), args.radius, args.faiss_threads)
            )
        )
        return

    import faiss

    from amber.index import PdqIndex

    hashes = make_hashes(args.rows, seed=1)
    ids = np.arange(1, args.rows + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        queries_path = folder / "queries.npy"
        np.save(queries_path, make_queries(hashes, args.queries, seed=2))
        started = time.perf_counter()
        PdqIndex.rebuild(folder / "amber", ids, hashes)
        built = {"amber": time.perf_counter() - started}
        started = time.perf_counter()
        flat = faiss.IndexBinaryFlat(256)
        flat.add(hashes)
        (folder / "faiss").mkdir()
        faiss.write_index_binary(flat, str(folder / "faiss" / "faiss.index"))
        built["faiss"] = time.perf_counter() - started
        del flat, hashes
        disk = {
            "amber": sum(p.stat().st_size for p in (folder / "amber").iterdir()) / 2**20,
            "faiss": (folder / "faiss" / "faiss.index").stat().st_size / 2**20,
        }
        results = {}
        for engine in ("amber", "faiss"):
            command = [sys.executable, __file__, "--radius", str(args.radius)]
            command += ["--faiss-threads", str(args.faiss_threads), "--measure"]
            command += [engine, str(folder / engine), str(queries_path)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[engine] = json.loads(output)
    print(
        f"rows={args.rows:,} queries={args.queries} radius={args.radius} "
        f"threads: amber 1 (numpy), faiss {args.faiss_threads}"
    )
    print(f"{'':24}{'amber PdqIndex':>16}{'faiss BinaryFlat':>18}")
    rows = [
        ("build (s)", "build", built, "{:.2f}"),
        ("open (s)", "open_s", None, "{:.4f}"),
        ("p50 single query (ms)", "p50_ms", None, "{:.3f}"),
        ("p99 single query (ms)", "p99_ms", None, "{:.3f}"),
        ("+RSS after open (MB)", "rss_open_mb", None, "{:.0f}"),
        ("+RSS after queries (MB)", "rss_after_mb", None, "{:.0f}"),
        ("on disk (MB)", "disk", disk, "{:.0f}"),
        ("matches found", "matches", None, "{:.0f}"),
    ]
    for label, key, source, form in rows:
        values = [
            (source[engine] if source is not None else results[engine][key])
            for engine in ("amber", "faiss")
        ]
        print(f"{label:24}{form.format(values[0]):>16}{form.format(values[1]):>18}")


if __name__ == "__main__":
    main()
