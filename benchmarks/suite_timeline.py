"""Where the test suite's time goes: each test's start, wall time and CPU on each worker.

A pytest plugin and its report. Run the suite with the plugin, then summarise:

    PYTHONPATH=benchmarks python -m pytest -p suite_timeline
    python benchmarks/suite_timeline.py

Each pytest-xdist worker appends one JSON line per test to
``benchmarks/results/timeline/<worker>.jsonl`` (start time, wall seconds, CPU seconds of
the worker process; the CPU of processes a test starts is not in it). The report prints,
for each worker, how many tests it ran, how long it was busy, when it ran its last test,
and the files that took the most wall time. It is how the scheduling fault of
docs/benchmarks.md ("Start-up and the test suite") was found: one worker busy for 633 s,
the other idle after 175 s. Remove the folder between runs with different worker
counts (each worker name keeps its own file).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(__file__).resolve().parent / "results" / "timeline"


def pytest_sessionstart(session: Any) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / f"{_worker()}.jsonl").unlink(missing_ok=True)  # this run's lines only


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: object) -> Iterator[None]:
    """Around each test where it runs (a worker, or the one process without xdist)."""
    wall, cpu = time.time(), time.process_time()
    yield
    line = {
        "id": item.nodeid,
        "start": wall,
        "wall": time.time() - wall,
        "cpu": time.process_time() - cpu,
    }
    with (FOLDER / f"{_worker()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    rows = {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(args.folder.glob("*.jsonl"))
    }
    if not rows:
        print(f"no timeline in {args.folder}: run the suite with -p suite_timeline first")
        return 1
    origin = min(r["start"] for tests in rows.values() for r in tests)
    print("| worker | tests | busy s | CPU s | last test ends at s |")
    print("|---|---:|---:|---:|---:|")
    files: Counter[str] = Counter()
    for worker, tests in rows.items():
        busy = sum(r["wall"] for r in tests)
        cpu = sum(r["cpu"] for r in tests)
        end = max(r["start"] + r["wall"] for r in tests) - origin
        print(f"| {worker} | {len(tests)} | {busy:.0f} | {cpu:.0f} | {end:.0f} |")
        for r in tests:
            files[r["id"].split("::")[0]] += r["wall"]
    print(f"\n| file (top {args.top}) | wall s |")
    print("|---|---:|")
    for name, wall in files.most_common(args.top):
        print(f"| {name} | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
