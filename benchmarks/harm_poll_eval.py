"""Precision, recall and F1 of the harm-poll detector on the labelled multilingual set.

Reads ``tests/data/harm_poll/labelled.jsonl`` (see the README beside it). A post is
predicted positive when ``assess`` fires; it is a true positive when its label is
``vote`` or ``announcement``. ``kind ok`` counts true positives whose kind matches
the label. Figures are given per language and overall for each split (``dev``,
``test``, ``holdout``, ``blind``; the README beside the data says when each was written
and how it was used) and for all posts together.

Run from the repository root:

    python benchmarks/harm_poll_eval.py [--errors] [--split dev|test|holdout|blind]

Prints Markdown tables and writes ``benchmarks/results/harm_poll_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amber.harm_poll import DEFAULT_THRESHOLD, assess

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "harm_poll" / "labelled.jsonl"
#: Written by a second author who never saw the detector or the labelled set; its first
#: run is reported in docs/harm-poll.md. Evaluated, never used by the tests.
BLIND2 = ROOT / "tests" / "data" / "harm_poll" / "blind2.jsonl"
OUT = ROOT / "benchmarks" / "results" / "harm_poll_eval.json"
LANGUAGES = ("en", "ar", "fa", "ckb", "tr", "fr", "es", "ru", "ur", "de")


@dataclass
class Tally:
    """Confusion counts for one group of posts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    kind_ok: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, gold: bool, pred: bool, kind_ok: bool) -> None:
        if gold and pred:
            self.tp += 1
            self.kind_ok += kind_ok
        elif pred:
            self.fp += 1
        elif gold:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "posts": self.tp + self.fp + self.fn + self.tn,
            "positives": self.tp + self.fn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "kind_ok": self.kind_ok,
        }


def load(path: Path = DATA) -> list[dict[str, Any]]:
    """The labelled posts, one dict per line."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(rows: list[dict[str, Any]], *, threshold: float) -> dict[str, dict[str, Tally]]:
    """Tallies by split (``dev``, ``test``, ``all``) and language (plus ``overall``)."""
    tallies: dict[str, dict[str, Tally]] = {}
    for row in rows:
        poll = row.get("poll") or {}
        result = assess(
            row.get("text"),
            question=poll.get("question"),
            options=poll.get("options") or (),
            threshold=threshold,
        )
        gold = row["label"] != "negative"
        kind_ok = result.kind is not None and result.kind.value == row["label"]
        for split in (row["split"], "all"):
            for language in (row["language"], "overall"):
                tally = tallies.setdefault(split, {}).setdefault(language, Tally())
                tally.add(gold, result.fired, kind_ok)
                if gold != result.fired and language != "overall" and split != "all":
                    tally.errors.append(f"{row['id']} [{row['label']}] {result.explain()}")
    return tallies


def table(tallies: dict[str, Tally]) -> str:
    """A Markdown table, one row per language, then overall."""
    lines = [
        "| language | posts | positives | precision | recall | F1 | FP | FN | kind ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for language in (*LANGUAGES, "overall"):
        t = tallies.get(language)
        if t is None:
            continue
        name = f"**{language}**" if language == "overall" else language
        lines.append(
            f"| {name} | {t.tp + t.fp + t.fn + t.tn} | {t.tp + t.fn} | {t.precision:.2f} | "
            f"{t.recall:.2f} | {t.f1:.2f} | {t.fp} | {t.fn} | {t.kind_ok}/{t.tp} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", action="store_true", help="list misclassified posts")
    parser.add_argument("--split", help="print only this split (dev, test, holdout, ...)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    rows = load() + load(BLIND2)
    tallies = evaluate(rows, threshold=args.threshold)
    order = ["dev", "dev2", "test", "holdout", "blind", "blind2"]
    present = {str(r.get("split")) for r in rows}
    splits = (
        [args.split]
        if args.split
        else [*[s for s in order if s in present], *sorted(present - set(order)), "all"]
    )
    for split in splits:
        print(f"\n### {split} split (threshold {args.threshold})\n")
        print(table(tallies[split]))
        if args.errors and split != "all":
            for language in LANGUAGES:
                for line in tallies[split].get(language, Tally()).errors:
                    print("  -", line, file=sys.stderr)
    result = {
        "data": str(DATA.relative_to(ROOT)),
        "threshold": args.threshold,
        "splits": {
            split: {lang: t.as_json() for lang, t in by_lang.items()}
            for split, by_lang in tallies.items()
        },
    }
    if not args.split:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
