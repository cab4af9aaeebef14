"""Start-up and test-suite time of two revisions, side by side in one run.

Each revision is checked out into a temporary git worktree and run from its own source
tree (``PYTHONPATH=<tree>/src``), so both use this machine's installed dependencies and
nothing else differs. Start-up commands are timed interleaved (``--runs`` times each,
after one warm-up), so machine noise falls on both alike; then each revision's whole
test suite runs once (``python -m pytest -q``, the same ``-n auto`` both had), one after
the other.

Run from the repository root:

    python benchmarks/faces.py [--before d4ee1d0] [--after HEAD] [--runs 15] [--no-suite]

Prints a Markdown table and writes ``benchmarks/results/faces.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "faces.json"
COMMANDS = {
    "amber --help": [sys.executable, "-m", "amber", "--help"],
    "amber version": [sys.executable, "-m", "amber", "version"],
    "import amber.policy": [sys.executable, "-c", "import amber.policy"],
}
SUMMARY = re.compile(r"(\d+) passed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="d4ee1d0")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-suite", action="store_true", help="time start-up only")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="amber-faces-") as scratch:
        trees = {name: _checkout(rev, Path(scratch) / name) for name, rev in
                 (("before", args.before), ("after", args.after))}  # fmt: skip
        try:
            startup = _startup(trees, args.runs)
            suite = {} if args.no_suite else {name: _suite(tree) for name, tree in trees.items()}
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False, capture_output=True)  # fmt: skip

    result = {
        "machine": describe(),
        "before": args.before,
        "after": args.after,
        "runs": args.runs,
        "startup_seconds": startup,
        "suite": suite,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"| | {args.before} | {args.after} |\n|---|---|---|")
    for label in COMMANDS:
        b, a = startup[label]["before"], startup[label]["after"]
        print(f"| `{label}` (median of {args.runs}) | {b['median']:.3f} s | {a['median']:.3f} s |")
    for key in ("seconds", "passed"):
        if suite:
            print(f"| test suite {key} | {suite['before'][key]} | {suite['after'][key]} |")
    return 0


def _checkout(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True)  # fmt: skip
    return where


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "src")}


def _startup(trees: dict[str, Path], runs: int) -> dict[str, dict[str, dict[str, float]]]:
    times: dict[str, dict[str, list[float]]] = {c: {n: [] for n in trees} for c in COMMANDS}
    for label, command in COMMANDS.items():
        for tree in trees.values():  # warm-up: file caches, .pyc files
            subprocess.run(command, env=_env(tree), cwd=tree, check=True, capture_output=True)
        for _ in range(runs):
            for name, tree in trees.items():
                started = time.perf_counter()
                subprocess.run(command, env=_env(tree), cwd=tree, check=True, capture_output=True)
                times[label][name].append(time.perf_counter() - started)
    return {
        label: {
            name: {"median": statistics.median(t), "mean": statistics.fmean(t), "min": min(t)}
            for name, t in per.items()
        }
        for label, per in times.items()
    }


def _suite(tree: Path) -> dict[str, object]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         env=_env(tree), cwd=tree, capture_output=True, text=True)  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    found = SUMMARY.search(last)
    return {
        "seconds": seconds,
        "passed": int(found.group(1)) if found else None,
        "summary": last,
        "exit_code": run.returncode,
    }


if __name__ == "__main__":
    raise SystemExit(main())
