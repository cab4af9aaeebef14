"""How long the harm-poll detector takes per post.

Assesses the posts of ``tests/data/harm_poll/labelled.jsonl`` and of every language's
test examples (``tests/data/harm_poll/examples/*.jsonl``: text, poll question and
options, in every script amber reads) over and over, ``--n`` assessments in all (default
50,000), timing each call, after one warm-up call that builds the lexicon index and
loads the language-identification model (timed separately as ``cold``).

Run from the repository root:

    python benchmarks/harm_poll_speed.py [--n 50000] [--output FILE]

Prints a Markdown table and writes ``benchmarks/results/harm_poll_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from amber.harm_poll import assess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "harm_poll" / "labelled.jsonl"
EXAMPLES = ROOT / "tests" / "data" / "harm_poll" / "examples"
OUT = ROOT / "benchmarks" / "results" / "harm_poll_speed.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="assessments to time")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = []
    for file in [DATA, *sorted(EXAMPLES.glob("*.jsonl"))]:
        with file.open(encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    posts = [
        (
            r["text"],
            (r["poll"] or {}).get("question"),
            tuple((r["poll"] or {}).get("options") or ()),
        )
        for r in rows
    ]
    start = time.perf_counter()
    assess("warm up: builds the lexicon index")
    cold_ms = (time.perf_counter() - start) * 1000

    times: list[int] = []
    clock = time.perf_counter_ns
    for i in range(args.n):
        text, question, options = posts[i % len(posts)]
        t0 = clock()
        assess(text, question=question, options=options)
        times.append(clock() - t0)
    times.sort()
    mean_us = statistics.fmean(times) / 1000
    p50_us = times[len(times) // 2] / 1000
    p99_us = times[min(len(times) - 1, int(len(times) * 0.99))] / 1000
    max_us = times[-1] / 1000
    chars = statistics.fmean(len(t or "") + len(q or "") + sum(map(len, o)) for t, q, o in posts)

    print("| assessments | posts | mean chars | mean µs | p50 µs | p99 µs | max µs | cold ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.n} | {len(posts)} | {chars:.0f} | {mean_us:.1f} | {p50_us:.1f} | "
        f"{p99_us:.1f} | {max_us:.1f} | {cold_ms:.0f} |"
    )
    result = {
        "data": [str(DATA.relative_to(ROOT)), str(EXAMPLES.relative_to(ROOT)) + "/*.jsonl"],
        "assessments": args.n,
        "posts": len(posts),
        "mean_chars": round(chars, 1),
        "mean_us": round(mean_us, 1),
        "p50_us": round(p50_us, 1),
        "p99_us": round(p99_us, 1),
        "max_us": round(max_us, 1),
        "cold_ms": round(cold_ms, 1),
        "machine": describe(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
