"""The harm-poll detector on evaluation sets written by people who never saw it.

Each set is a folder of JSONL files (``benchmarks/data/harm_poll/<set>/``, one file per
language; the README there says who wrote it and to which brief). A row is a post:

    {"id", "language", "label": "harm" | "negative" | "everyday", "kind", "pattern",
     "text", "poll": {"question", "options"} | null,
     "author"?, "reply_to"?, "created_at"?, "photo"?}

The whole set goes through ``amber scan`` as a platform would send it (the default
policy, a fresh SQLite database and vault), so context counts: an announcement that
replies to a harm poll, or shows the same photo. ``photo`` is a key standing for an
image: posts with the same key carry the same generated (benign) picture.

A harm post is caught at ``review`` when its verdict is review or stronger, at
``restrict`` when restrict or stronger; a negative or everyday post is a false alarm at
``review`` when it gets review or stronger. Figures per set, per language and per
pattern; ``--errors`` lists every miss and false alarm with its explanation.

    python benchmarks/harm_poll_sets.py benchmarks/data/harm_poll/e1 [...more sets]
    python benchmarks/harm_poll_sets.py SET --first-run   # keep SET/first_run.json

``--first-run`` stores the result beside the set, once: that file is the honest figure
for a set measured before anything was changed because of it, and is never rewritten.
Writes ``benchmarks/results/harm_poll_sets.json`` too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amber import __version__
from amber.engine import ScanResult, open_engine
from amber.policy import Verdict
from amber.posts import read_input
from amber.synthetic import photo

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "harm_poll_sets.json"


@dataclass
class Group:
    """Counts for one group of posts (a set, a language, a pattern)."""

    harm: int = 0
    caught_review: int = 0
    caught_restrict: int = 0
    negative: int = 0
    negative_review: int = 0
    negative_restrict: int = 0
    everyday: int = 0
    everyday_review: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, label: str, verdict: Verdict) -> None:
        review = verdict.rank >= Verdict.review.rank
        restrict = verdict.rank >= Verdict.restrict.rank
        if label == "harm":
            self.harm += 1
            self.caught_review += review
            self.caught_restrict += restrict
        elif label == "negative":
            self.negative += 1
            self.negative_review += review
            self.negative_restrict += restrict
        else:
            self.everyday += 1
            self.everyday_review += review

    def to_json(self) -> dict[str, Any]:
        def rate(a: int, b: int) -> float | None:
            return None if b == 0 else round(a / b, 4)

        return {
            "harm": self.harm,
            "recall_review": rate(self.caught_review, self.harm),
            "recall_restrict": rate(self.caught_restrict, self.harm),
            "negative": self.negative,
            "false_alarm_review": rate(self.negative_review, self.negative),
            "false_alarm_restrict": rate(self.negative_restrict, self.negative),
            "everyday": self.everyday,
            "everyday_false_alarm": rate(self.everyday_review, self.everyday),
            "counts": {
                "caught_review": self.caught_review,
                "caught_restrict": self.caught_restrict,
                "negative_review": self.negative_review,
                "negative_restrict": self.negative_restrict,
                "everyday_review": self.everyday_review,
            },
        }


def read_set(folder: Path) -> list[dict[str, Any]]:
    """Every row of every ``*.jsonl`` file in ``folder``, in file and line order."""
    rows: list[dict[str, Any]] = []
    for file in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{file} line {n}: invalid JSON: {exc}") from None
            if row.get("label") not in ("harm", "negative", "everyday"):
                raise SystemExit(f"{file} line {n}: label must be harm, negative or everyday")
            rows.append(row)
    return rows


def _post(row: dict[str, Any], photos: Path) -> dict[str, Any]:
    post: dict[str, Any] = {"id": row["id"]}
    for key in ("author", "reply_to", "created_at", "text"):
        if row.get(key):
            post[key] = row[key]
    poll = row.get("poll")
    if poll and poll.get("options"):
        post["poll"] = {"question": poll.get("question") or "", "options": poll["options"]}
    if row.get("photo"):
        key = str(row["photo"])
        file = photos / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".png")
        if not file.exists():
            seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
            photo(seed, 480, 360).save(file)
        post["media"] = [{"path": str(file)}]
    return post


def run_set(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """Scan one set through a fresh engine; its figures and its error lines."""
    rows = read_set(folder)
    by_id = {r["id"]: r for r in rows}
    total = Group()
    languages: dict[str, Group] = defaultdict(Group)
    patterns: dict[str, Group] = defaultdict(Group)
    kinds: dict[str, Group] = defaultdict(Group)
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = work / "photos"
        photos.mkdir()
        posts = work / "posts.jsonl"
        with posts.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(_post(row, photos), ensure_ascii=False) + "\n")
        with open_engine(db=work / "eval.db", vault=work / "vault") as engine:
            results = [r for r in engine.scan(read_input(posts)) if isinstance(r, ScanResult)]
    for result in results:
        row = by_id[result.post.id]
        verdict = result.outcome.verdict
        label = row["label"]
        for group in (
            total,
            languages[row["language"]],
            patterns[str(row.get("pattern", "-"))],
            kinds[f"{label}:{row.get('kind', 'none')}"],
        ):
            group.add(label, verdict)
        missed = label == "harm" and verdict.rank < Verdict.review.rank
        alarm = label != "harm" and verdict.rank >= Verdict.review.rank
        if missed or alarm:
            detail = "; ".join(r.detail or r.rule for r in result.outcome.reasons) or "-"
            text = " ".join(
                (
                    (row.get("text") or "") + " " + json.dumps(row.get("poll"), ensure_ascii=False)
                ).split()
            )[:160]
            what = "MISS" if missed else f"FALSE {verdict.value}"
            errors.append(f"{what} {row['id']} [{row.get('pattern')}] {text}\n    {detail}")
    figures = {
        "set": folder.name,
        "posts": len(rows),
        "overall": total.to_json(),
        "languages": {k: v.to_json() for k, v in sorted(languages.items())},
        "kinds": {k: v.to_json() for k, v in sorted(kinds.items())},
        "patterns": {k: v.to_json() for k, v in sorted(patterns.items())},
    }
    return figures, errors


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def table(figures: dict[str, Any]) -> str:
    """Markdown: one row per language, then the set overall."""
    lines = [
        f"### {figures['set']} ({figures['posts']} posts)",
        "",
        "| language | harm | caught at review % | at restrict % | hard negatives | false "
        "alarms % | everyday | everyday alarms % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*figures["languages"].items(), ("**overall**", figures["overall"])]
    for name, g in rows:
        lines.append(
            f"| {name} | {g['harm']} | {_pct(g['recall_review'])} | {_pct(g['recall_restrict'])}"
            f" | {g['negative']} | {_pct(g['false_alarm_review'])} | {g['everyday']}"
            f" | {_pct(g['everyday_false_alarm'])} |"
        )
    return "\n".join(lines)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path, help="evaluation set folders")
    parser.add_argument("--errors", action="store_true", help="list misses and false alarms")
    parser.add_argument(
        "--first-run", action="store_true", help="keep SET/first_run.json (never overwritten)"
    )
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    every: dict[str, Any] = {}
    for folder in args.sets:
        if not folder.is_dir():
            print(f"Error: {folder} is not a folder of JSONL files", file=sys.stderr)
            return 2
        figures, errors = run_set(folder)
        figures["measured"] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "amber_version": __version__,
            "commit": _commit(),
        }
        every[folder.name] = figures
        print(table(figures))
        print()
        if args.errors:
            print("\n".join(errors))
            print()
        if args.first_run:
            keep = folder / "first_run.json"
            if keep.exists():
                print(f"{keep} exists: a first run is never rewritten", file=sys.stderr)
            else:
                figures["errors"] = errors
                keep.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
                print(f"wrote {keep}", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(every, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
