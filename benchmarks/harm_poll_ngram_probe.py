"""A probe, not a part of amber: would a learned character n-gram model catch the
harm polls the lexicons miss?

Trains a logistic regression on character 2-5-grams (TF-IDF) of the posts of the first
two evaluation rounds, the development and everyday sets and the test examples, and
scores the third round (e7, e8, e9), post by post without context, beside the detector
(``assess``) on the same posts. The third round was never trained on here, but it is no
longer unseen by the project (its first run is kept), so the figures say whether the
idea is worth a fourth blind round, not how good it is.

Needs scikit-learn, which amber does not depend on:

    pip install scikit-learn
    python benchmarks/harm_poll_ngram_probe.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from amber.harm_poll import assess

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "benchmarks" / "data" / "harm_poll"
EXAMPLES = ROOT / "tests" / "data" / "harm_poll" / "examples"
TRAIN = ("e1", "e2", "e3", "e4", "e5", "e6", "dev3", "d1", "d2")
TEST = ("e7", "e8", "e9")


def rows(folders: list[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for folder in folders:
        for file in sorted(folder.glob("*.jsonl")):
            out.extend(json.loads(line) for line in file.open(encoding="utf-8") if line.strip())
    return out


def text(row: dict[str, Any]) -> str:
    poll = row.get("poll") or {}
    return "\n".join([row.get("text") or "", poll.get("question") or "", *poll.get("options", [])])


def detector(row: dict[str, Any]) -> float:
    poll = row.get("poll") or {}
    options = tuple(poll.get("options") or ())
    return assess(row.get("text") or "", question=poll.get("question"), options=options).score


def main() -> int:
    train = rows([SETS / s for s in TRAIN] + [EXAMPLES])
    test = rows([SETS / s for s in TEST])
    y_train = [1 if r["label"] == "harm" else 0 for r in train]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    model = LogisticRegression(C=4, max_iter=2000, class_weight="balanced")
    model.fit(vec.fit_transform([text(r) for r in train]), y_train)
    learned = model.predict_proba(vec.transform([text(r) for r in test]))[:, 1]
    assessed = np.array([detector(r) for r in test])
    labels = np.array([r["label"] for r in test])
    harm, negative, everyday = labels == "harm", labels == "negative", labels == "everyday"
    print(f"trained on {len(train)} posts, scored {len(test)} ({harm.sum()} harm,")
    print(f"{negative.sum()} hard negatives, {everyday.sum()} everyday), one post at a time\n")
    print("| flagged when | harm caught | hard-negative alarms | everyday alarms |")
    print("|---|---:|---:|---:|")
    variants = [
        ("detector ≥ 0.25 (review)", assessed >= 0.25),
        ("detector ≥ 0.5 (restrict)", assessed >= 0.5),
        *((f"n-gram model ≥ {t}", learned >= t) for t in (0.5, 0.7, 0.8)),
        *(
            (f"detector ≥ 0.25 or model ≥ {t}", (assessed >= 0.25) | (learned >= t))
            for t in (0.7, 0.8)
        ),
    ]
    for name, flagged in variants:
        print(
            f"| {name} | {flagged[harm].mean():.0%} | {flagged[negative].mean():.1%}"
            f" | {flagged[everyday].mean():.1%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
