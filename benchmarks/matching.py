"""PDQ matching at scale: amber's index against faiss, side by side, in one run.

For each size (default 1 and 10 million hashes) the script generates a bank the way real
ones look, deterministically from ``--seed``: mostly random 256-bit hashes plus about 3%
of rows in families of near-duplicates (a random seed hash and variants 0..30 bits from
it, 10 rows a family on average), shuffled. Queries are half near-duplicates of stored rows
(0..36 bits flipped, a fifth of them from families: hits, some just past the radius) and
half fresh random hashes (misses). Three engines are built from the same rows:

* ``amber``: ``PdqIndex`` (``src/amber/index/``), files memory-mapped at open;
* ``faiss Flat``: ``IndexBinaryFlat``, brute force, the ground truth;
* ``faiss MIH``: ``IndexBinaryMultiHash``, faiss's multi-index hashing, with ``nflip``
  set so that it is exact at the radius (``--faiss-mih nhash,bits,nflip``).

Each engine is built in a process of its own and saved, then opened and measured in a
fresh process: open time (page cache warm: the files were just written), the first
query, then 500 warm-up queries and ``--queries`` timed ones, one query per call, one
thread (faiss's OpenMP is set to 1). Latency is wall time per call; CPU time per call is
reported beside it because a shared machine stretches wall time. Recall and extra hits are
counted against faiss Flat's answers. Resident memory is the measuring process's
``VmRSS`` from ``/proc/self/status`` after all queries: Python, numpy, the engine's
libraries (numba and LLVM for amber) and every index page touched, shared or not; "per
hash" is that minus the same process's RSS before opening (libraries loaded, kernels
warm), divided by the rows. Finally amber takes incremental adds and removals (0.5% and
0.1% of rows), is queried again (recall against a fresh faiss Flat of the live rows) and
compacted.

Run from the repository root (needs ``pip install -e '.[bench]'`` for faiss):

    python benchmarks/matching.py [--sizes 1000000,10000000] [--queries 2000]
        [--radius 31] [--faiss-mih 16,16,1] [--work DIR] [--quick]

Prints a table per size and writes ``benchmarks/results/matching.json``
(``matching-quick.json`` with ``--quick``: 100,000 rows, 500 queries). 10 million rows
need about 8 GB of memory (faiss's multi-hash tables) and 3 GB of disk; everything is
generated, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from machine import resident

Hashes = npt.NDArray[np.uint8]
ENGINES = ("amber", "faiss Flat", "faiss MIH")
WARMUP = 500
RESULTS = Path(__file__).parent / "results"


# --------------------------------------------------------------------------- data


def flip_bits(rows: Hashes, counts: npt.NDArray[np.int64], rng: np.random.Generator) -> Hashes:
    """``rows`` with exactly ``counts[i]`` distinct random bits flipped in row ``i``."""
    bits = np.unpackbits(rows, axis=1)
    for count in np.unique(counts).tolist():
        if count == 0:
            continue
        chosen = np.flatnonzero(counts == count)
        picks = np.argpartition(rng.random((chosen.shape[0], 256), np.float32), count, axis=1)
        bits[chosen[:, None], picks[:, :count]] ^= 1
    return np.packbits(bits, axis=1)


def make_bank(size: int, seed: int) -> tuple[Hashes, int]:
    """``size`` hashes, random plus ~3% in families of near-duplicates; and that count."""
    rng = np.random.default_rng([seed, size])
    hashes = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    wanted = size * 3 // 100
    family_sizes = 1 + rng.geometric(1 / 9, wanted // 5 + 1)
    family_sizes = family_sizes[: np.searchsorted(np.cumsum(family_sizes), wanted) + 1]
    members = int(family_sizes.sum())
    seeds = rng.integers(0, 256, (family_sizes.shape[0], 32), dtype=np.uint8)
    family_of = np.repeat(np.arange(family_sizes.shape[0]), family_sizes)
    distance = rng.integers(0, 31, members)
    distance[np.cumsum(family_sizes) - family_sizes] = 0  # each family holds its seed
    for start in range(0, members, 100_000):
        part = slice(start, min(start + 100_000, members))
        hashes[part] = flip_bits(seeds[family_of[part]], distance[part], rng)
    return hashes[rng.permutation(size)], members


def make_queries(hashes: Hashes, count: int, seed: int) -> Hashes:
    """Half near-duplicates of stored rows (0..36 bits away), half random hashes."""
    rng = np.random.default_rng([seed, hashes.shape[0], 1])
    near = count // 2
    sources = np.sort(rng.integers(0, hashes.shape[0], near))
    queries = np.empty((count, 32), np.uint8)
    queries[:near] = flip_bits(hashes[sources], rng.integers(0, 37, near), rng)
    queries[near:] = rng.integers(0, 256, (count - near, 32), dtype=np.uint8)
    return queries[rng.permutation(count)]


def brute_force(hashes: Hashes, query: Hashes, radius: int) -> set[int]:
    """Rows within ``radius`` of one query, by numpy popcount (checks faiss's semantics)."""
    words, target = hashes.view(np.uint64), query.view(np.uint64)
    distance = np.zeros(hashes.shape[0], np.int64)
    for word in range(4):
        distance += np.bitwise_count(words[:, word] ^ target[word])
    return set(np.flatnonzero(distance <= radius).tolist())


# --------------------------------------------------------------------------- engines
# Each function below runs in a child process of its own (see ``run_child``).


def mih_settings(text: str, radius: int) -> tuple[int, int, int]:
    """``nhash,bits,nflip`` for faiss's multi-hash index; exact only if it covers ``radius``."""
    nhash, bits, nflip = (int(part) for part in text.split(","))
    if nhash * bits > 256 or nhash * (nflip + 1) <= radius:
        raise SystemExit(f"--faiss-mih {text} is not exact at radius {radius}")
    return nhash, bits, nflip


def build(engine: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Build one engine's index from ``hashes.npy`` and save it under ``work``."""
    hashes = np.load(work / "hashes.npy")
    started = time.perf_counter()
    if engine == "amber":
        from amber.index import PdqIndex

        index = PdqIndex.rebuild(work / "amber", np.arange(hashes.shape[0]), hashes)
        seconds = time.perf_counter() - started
        index.search(hashes[:1], options["radius"])  # compiles the kernels once, if needed
        files = list((work / "amber").iterdir())
    else:
        import faiss

        faiss.omp_set_num_threads(1)
        if engine == "faiss Flat":
            index = faiss.IndexBinaryFlat(256)
        else:
            nhash, bits, nflip = mih_settings(options["faiss_mih"], options["radius"])
            index = faiss.IndexBinaryMultiHash(256, nhash, bits)
            index.nflip = nflip
        index.add(hashes)
        path = work / f"{engine.replace(' ', '-')}.index"
        faiss.write_index_binary(index, str(path))
        seconds = time.perf_counter() - started
        files = [path]
    return {"build_s": seconds, "disk_bytes": sum(path.stat().st_size for path in files)}


def measure(engine: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Open one engine's saved index, time single queries, save the answers."""
    radius = options["radius"]
    queries = np.load(work / "queries.npy")
    warmup = np.random.default_rng(7).integers(0, 256, (WARMUP, 32), dtype=np.uint8)
    kernels_loaded = 0.0
    if engine == "amber":
        started = time.perf_counter()
        from amber.index import PdqIndex, kernels, mih

        kernels_loaded = time.perf_counter() - started
        # Load the compiled kernels before the baseline, so that it holds numba and LLVM:
        # search a scratch index (base and delta), probing even though it is small.
        scratch = tempfile.mkdtemp()
        tiny = PdqIndex.rebuild(scratch, np.arange(WARMUP), warmup)
        tiny.add([WARMUP], warmup[:1])
        mih._scan_bias = float("inf")
        started = time.perf_counter()
        tiny.search(warmup[:1], radius)
        kernels_loaded += time.perf_counter() - started
        mih._scan_bias = 1.0
        shutil.rmtree(scratch)
        assert kernels.search_tables.signatures and kernels.scan.signatures
        before = resident()
        started = time.perf_counter()
        index = PdqIndex.open(work / "amber")
        opened = time.perf_counter() - started

        def search(query: Hashes) -> list[int]:
            return [id_ for id_, _ in index.search(query, radius)[0]]
    else:
        import faiss

        faiss.omp_set_num_threads(1)
        before = resident()
        started = time.perf_counter()
        index = faiss.read_index_binary(str(work / f"{engine.replace(' ', '-')}.index"))
        opened = time.perf_counter() - started

        def search(query: Hashes) -> list[int]:
            limits, _, labels = index.range_search(query, radius + 1)  # faiss: distance < r
            return labels[limits[0] : limits[1]].tolist()

    after_open = resident()
    started = time.perf_counter()
    search(queries[:1])
    first = time.perf_counter() - started
    for query in warmup:
        search(query[None])
    wall, cpu, answers = [], [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.thread_time()
        found = search(query[None])
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        answers.append(sorted(found))
    after = resident()
    (work / f"{engine.replace(' ', '-')}.answers.json").write_text(json.dumps(answers))
    rows = int(np.load(work / "hashes.npy", mmap_mode="r").shape[0])
    return {
        **timings(wall, cpu),
        "open_s": opened,
        "first_query_s": first,
        "kernels_load_s": kernels_loaded,
        "rss_before_open_mb": before["VmRSS"],
        "rss_after_open_mb": after_open["VmRSS"],
        "rss_mb": after["VmRSS"],
        "rss_anon_mb": after["RssAnon"],
        "rss_file_mb": after["RssFile"],
        "resident_bytes_per_hash": (after["VmRSS"] - before["VmRSS"]) * 1e6 / rows,
    }


def timings(wall: list[float], cpu: list[float]) -> dict[str, float]:
    """Latency percentiles (ms) and queries per second of single-query calls."""
    wall_ms, cpu_ms = np.array(wall) * 1000, np.array(cpu) * 1000
    return {
        "p50_ms": float(np.percentile(wall_ms, 50)),
        "p99_ms": float(np.percentile(wall_ms, 99)),
        "max_ms": float(wall_ms.max()),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
        "cpu_p99_ms": float(np.percentile(cpu_ms, 99)),
        "queries_per_s": float(len(wall) / sum(wall)),
    }


def incremental(engine: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """amber under adds and removals: latency of each, queries over delta and tombstones."""
    import faiss

    from amber.index import PdqIndex

    radius = options["radius"]
    hashes = np.load(work / "hashes.npy", mmap_mode="r")
    queries = np.load(work / "queries.npy")
    rows = hashes.shape[0]
    rng = np.random.default_rng([options["seed"], rows, 2])
    added_count, removed_count = rows // 200, rows // 1000
    added = make_queries(np.asarray(hashes[: max(rows // 10, 1)]), added_count, options["seed"])
    added_ids = np.arange(rows, rows + added_count)
    removed_ids = rng.choice(rows, removed_count, replace=False)
    index = PdqIndex.open(work / "amber")
    add_times, remove_times = [], []
    for start in range(0, added_count, 1000):
        started = time.perf_counter()
        index.add(added_ids[start : start + 1000], added[start : start + 1000])
        add_times.append(time.perf_counter() - started)
    for start in range(0, removed_count, 100):
        started = time.perf_counter()
        index.remove(removed_ids[start : start + 100])
        remove_times.append(time.perf_counter() - started)
    manifest = json.loads((work / "amber" / "manifest.json").read_text())
    for query in queries[:WARMUP]:
        index.search(query[None], radius)
    wall, cpu, answers = [], [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.thread_time()
        found = index.search(query[None], radius)[0]
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        answers.append(sorted(id_ for id_, _ in found))
    live = np.ones(rows, bool)
    live[removed_ids] = False
    live_ids = np.concatenate([np.flatnonzero(live), added_ids])
    flat = faiss.IndexBinaryFlat(256)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat.add(np.concatenate([np.asarray(hashes)[live], added]))
    limits, _, labels = flat.range_search(queries, radius + 1)
    truth = [
        sorted(live_ids[labels[limits[i] : limits[i + 1]]].tolist()) for i in range(len(queries))
    ]
    started = time.perf_counter()
    index.compact()
    compacted = time.perf_counter() - started
    return {
        **timings(wall, cpu),
        **agreement(answers, truth),
        "added": added_count,
        "removed": removed_count,
        "delta_rows": manifest["delta"]["rows"] if manifest["delta"] else 0,
        "tombstones": manifest["tombstones"]["rows"] if manifest["tombstones"] else 0,
        "add_1000_p50_ms": float(np.percentile(np.array(add_times) * 1000, 50)),
        "add_1000_max_ms": float(max(add_times) * 1000),
        "remove_100_p50_ms": float(np.percentile(np.array(remove_times) * 1000, 50)),
        "compact_s": compacted,
    }


def agreement(answers: list[list[int]], truth: list[list[int]]) -> dict[str, float]:
    """Recall against the true answers, and hits the truth does not have."""
    expected = sum(len(rows) for rows in truth)
    hit = sum(len(set(a) & set(t)) for a, t in zip(answers, truth, strict=True))
    extra = sum(len(set(a) - set(t)) for a, t in zip(answers, truth, strict=True))
    return {"recall": hit / expected if expected else 1.0, "extra": extra, "true_hits": expected}


CHILDREN = {"build": build, "measure": measure, "incremental": incremental}


def run_child(step: str, engine: str, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Run one step in a fresh Python process; return what it printed (JSON)."""
    command = [sys.executable, __file__, "--child", step, engine, str(work), json.dumps(options)]
    print(f"  {step} {engine} ...", file=sys.stderr, flush=True)
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- one size


def run_size(size: int, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Generate, build, measure and compare every engine at ``size`` rows."""
    print(f"{size:,} rows: generating", file=sys.stderr, flush=True)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    hashes, family_rows = make_bank(size, options["seed"])
    queries = make_queries(hashes, options["queries"], options["seed"])
    generated = time.perf_counter() - started
    np.save(work / "hashes.npy", hashes)
    np.save(work / "queries.npy", queries)
    checked = [brute_force(hashes, query, options["radius"]) for query in queries[:20]]
    del hashes
    engines: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        engines[engine] = run_child("build", engine, work, options)
    for engine in ENGINES:
        engines[engine].update(run_child("measure", engine, work, options))
    answers = {
        engine: json.loads((work / f"{engine.replace(' ', '-')}.answers.json").read_text())
        for engine in ENGINES
    }
    truth = answers["faiss Flat"]
    if [set(rows) for rows in truth[:20]] != checked:
        raise SystemExit("faiss Flat disagrees with numpy brute force: check its radius semantics")
    for engine in ENGINES:
        engines[engine].update(agreement(answers[engine], truth))
        engines[engine]["disk_bytes_per_hash"] = engines[engine]["disk_bytes"] / size
    changes = run_child("incremental", "amber", work, options)
    return {
        "rows": size,
        "family_rows": family_rows,
        "queries": options["queries"],
        "generate_s": generated,
        "engines": engines,
        "amber_after_adds_and_removals": changes,
    }


# --------------------------------------------------------------------------- report

ROWS = [
    ("build (s)", "build_s", 1, "{:.1f}"),
    ("open (ms)", "open_s", 1000, "{:.1f}"),
    ("first query after open (ms)", "first_query_s", 1000, "{:.1f}"),
    ("p50 latency (ms)", "p50_ms", 1, "{:.3f}"),
    ("p99 latency (ms)", "p99_ms", 1, "{:.3f}"),
    ("p99 CPU time (ms)", "cpu_p99_ms", 1, "{:.3f}"),
    ("queries/s (1 thread)", "queries_per_s", 1, "{:,.0f}"),
    ("recall vs brute force", "recall", 1, "{:.4f}"),
    ("extra hits", "extra", 1, "{:.0f}"),
    ("RSS after queries (MB)", "rss_mb", 1, "{:,.0f}"),
    ("resident bytes per hash", "resident_bytes_per_hash", 1, "{:.1f}"),
    ("on disk bytes per hash", "disk_bytes_per_hash", 1, "{:.1f}"),
]


def ratio(value: float, baseline: float) -> str:
    """``value / baseline``, as ``1/N`` when it is below 0.01."""
    share = value / baseline
    return f"{share:.3g}" if share >= 0.01 else f"1/{baseline / value:,.0f}"


def table(result: dict[str, Any], options: dict[str, Any]) -> str:
    """One size's figures, engines side by side, with amber's ratio to each baseline."""
    engines = result["engines"]
    amber = engines["amber"]
    lines = [
        f"### {result['rows']:,} PDQ hashes ({result['family_rows']:,} in near-duplicate "
        f"families), radius {options['radius']}, {result['queries']:,} single queries",
        "",
        "| | amber | faiss Flat | faiss MIH | amber ÷ Flat | amber ÷ MIH |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key, scale, form in ROWS:
        cells = [form.format(engines[engine][key] * scale) for engine in ENGINES]
        ratios = []
        for baseline in ("faiss Flat", "faiss MIH"):
            other = engines[baseline][key]
            ratios.append(ratio(amber[key], other) if other and key != "extra" else "")
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    changes = result["amber_after_adds_and_removals"]
    checks = [
        ("RSS < 1 GB", amber["rss_mb"] < 1000, f"{amber['rss_mb']:,.0f} MB"),
        ("open < 1 s", amber["open_s"] < 1, f"{amber['open_s'] * 1000:.1f} ms"),
        ("p99 < 1 ms", amber["p99_ms"] < 1, f"{amber['p99_ms']:.3f} ms"),
        ("exact", amber["recall"] == 1 and amber["extra"] == 0, f"recall {amber['recall']}"),
    ]
    lines += [
        "",
        "amber targets: "
        + "; ".join(f"{name} {'met' if ok else 'NOT met'} ({value})" for name, ok, value in checks)
        + ".",
        f"amber's first search in a process also imports numba and loads the compiled kernels "
        f"({amber['kernels_load_s'] * 1000:.0f} ms, once per process, not in the open time).",
        f"amber after {changes['added']:,} adds (batches of 1,000: p50 "
        f"{changes['add_1000_p50_ms']:.0f} ms, max {changes['add_1000_max_ms']:.0f} ms) and "
        f"{changes['removed']:,} removals (batches of 100: p50 {changes['remove_100_p50_ms']:.0f}"
        f" ms), delta {changes['delta_rows']:,} rows, {changes['tombstones']:,} tombstones: "
        f"p50 {changes['p50_ms']:.3f} ms, p99 {changes['p99_ms']:.3f} ms (CPU "
        f"{changes['cpu_p99_ms']:.3f}), recall {changes['recall']:.4f}, extra "
        f"{changes['extra']}; compact (merge into a new base) {changes['compact_s']:.1f} s.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run every size, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--radius", type=int, default=31)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--faiss-mih", default="16,16,1", help="nhash,bits,nflip")
    parser.add_argument("--work", type=Path, help="keep generated data and indexes here")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 500 queries")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, engine, work, options = args.child
        print(json.dumps(CHILDREN[step](engine, Path(work), json.loads(options))))
        return
    sizes = [100_000] if args.quick else [int(size) for size in args.sizes.split(",")]
    queries = 500 if args.quick else args.queries
    options = {"radius": args.radius, "queries": queries, "seed": args.seed}
    options["faiss_mih"] = args.faiss_mih
    mih_settings(args.faiss_mih, args.radius)
    load_before = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="amber-matching-"))
    results = []
    try:
        for size in sizes:
            result = run_size(size, work / str(size), options)
            results.append(result)
            print(table(result, options) + "\n", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "matching",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": options,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "sizes": results,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "matching-quick.json" if args.quick else "matching.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
