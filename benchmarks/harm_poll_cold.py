"""A new process's first harm-poll assessment, before and after the compiled-index cache.

Each run starts a fresh Python that imports ``amber.harm_poll`` and assesses one post:
``before`` from a git worktree of an earlier revision with an empty cache folder, then
``after`` (this tree) with an empty cache folder (it compiles and writes the index), then
``after`` again with the folder the previous run filled (it reads the index). The three
are interleaved ``--runs`` times, so machine noise falls on all alike.

Run from the repository root:

    python benchmarks/harm_poll_cold.py [--before 67bec91] [--runs 5]

Prints a Markdown table and writes ``benchmarks/results/harm_poll_cold.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "harm_poll_cold.json"
CODE = (
    "from amber.harm_poll import assess; "
    "assess('Kill him or let him go? You have one hour to vote.')"
)


def first_assessment(source: Path, cache: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(source), XDG_CACHE_HOME=cache)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE], env=env, check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="67bec91")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {
        f"before ({args.before})": [],
        "after, empty cache": [],
        "after, cache kept": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), args.before], cwd=ROOT, check=True
        )
        try:
            first_assessment(tree / "src", tempfile.mkdtemp(dir=tmp))  # bytecode compiled
            first_assessment(ROOT / "src", tempfile.mkdtemp(dir=tmp))
            for _ in range(args.runs):
                before, after, kept = times.values()
                before.append(first_assessment(tree / "src", tempfile.mkdtemp(dir=tmp)))
                empty = tempfile.mkdtemp(dir=tmp)
                after.append(first_assessment(ROOT / "src", empty))
                kept.append(first_assessment(ROOT / "src", empty))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print("| process | median s | runs |")
    print("|---|---:|---|")
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {shown} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"machine": describe(), "runs": args.runs, "times": times}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
