"""Backfill: posts/s of ``amber scan --cluster local`` with 1, 2 and 4 Dask workers next to
a plain ``amber scan`` of the same archive.

Builds a throw-away state in a temporary folder:

- a bank of one generated photo (``amber.synthetic.photo``), made with the real commands
  ``amber bank create`` and ``amber bank add``;
- an archive of ``--posts`` posts in one JSONL file: short texts of a few words, each by
  one of 5,000 authors, and a share ``--media`` carrying one small PNG (``--size``, one of
  ``--photos`` distinct generated photos; one in ``--photos`` of them is the banked one,
  so some posts are removed and preserved in the vault).

Then, in turn, each of these runs once on the same archive, each with a fresh copy of the
bank database and an empty vault, as a subprocess ``python -m amber scan ARCHIVE --format
jsonl`` on SQLite:

- ``plain``: ``--no-cluster`` (media hashed in a process pool, one process per core);
- ``dask-N``: ``--cluster local --workers N --partition-size P`` for N in 1, 2, 4: a
  local Dask cluster of N worker processes reading, parsing and hashing partitions of P
  lines while this process decides.

Every time is the wall time of the whole subprocess, start-up, the cluster's start and
imports included; the start-up alone (the same command on a one-post archive) is shown
beside it, and posts/s after it. Each run's stdout (the JSONL decisions) must be the same
as the plain run's, or the benchmark fails.

Run from the repository root:

    python benchmarks/backfill.py [--posts 10000] [--media 0.05] [--photos 50]
        [--size 128x128] [--partition-size 1000] [--workers 1,2,4] [--workdir DIR]

Prints a Markdown table and writes ``benchmarks/results/backfill.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "backfill.json"
#: First seed of the photos: far from other benchmarks' seeds.
SEED = 900_000
#: The words of the posts' texts.
VOCABULARY = (
    "sunset harbour tonight coffee rain city train friends weekend market garden concert "
    "match goal team dinner recipe holiday beach mountain snow morning news vote school"
)


def make_archive(folder: Path, *, posts: int, media: float, photos: int, size: str) -> Path:
    """The archive and its photos in ``folder``; photo 0 is the banked one."""
    width, height = (int(x) for x in size.split("x"))
    images = folder / "images"
    images.mkdir(parents=True)
    files = []
    for i in range(photos):
        path = images / f"photo-{i}.png"
        photo(SEED + i, width, height).save(path)
        files.append(path)
    rng = random.Random(1)
    words = VOCABULARY.split()
    archive = folder / "archive.jsonl"
    with archive.open("w", encoding="utf-8") as handle:
        for i in range(posts):
            post: dict[str, Any] = {
                "id": f"post-{i}",
                "author": f"user-{rng.randrange(5000)}",
                "created_at": f"2026-0{1 + i % 9}-1{i % 10}T12:00:00Z",
                "text": " ".join(rng.choice(words) for _ in range(rng.randrange(4, 20))),
            }
            if rng.random() < media:
                post["media"] = [{"path": str(files[rng.randrange(photos)])}]
            handle.write(json.dumps(post) + "\n")
    return archive


def amber(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amber", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


def scan(
    name: str, archive: Path, bank_db: Path, folder: Path, *extra: str
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds of one scan of ``archive`` on a fresh copy of the bank database, and what
    it printed."""
    folder.mkdir()
    db = folder / "amber.db"
    shutil.copy(bank_db, db)
    env = {"AMBER_DB": str(db), "AMBER_VAULT": str(folder / "vault")}
    started = time.perf_counter()
    done = amber("scan", archive, "--format", "jsonl", *extra, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done


def run(name: str, archive: Path, bank_db: Path, work: Path, *extra: str) -> dict[str, Any]:
    """One scan of ``archive``, and the same command's start-up (on a one-post archive)."""
    one = work / "one.jsonl"
    one.write_text(archive.open(encoding="utf-8").readline(), encoding="utf-8")
    startup, _ = scan(name, one, bank_db, work / f"{name}-startup", *extra)
    load = os.getloadavg()
    seconds, done = scan(name, archive, bank_db, work / name, *extra)
    posts = len(done.stdout.splitlines())
    summary = done.stderr.strip().splitlines()[-1]
    print(f"{name}: {posts} posts in {seconds:.1f} s, start-up {startup:.1f} s", file=sys.stderr)
    return {
        "name": name,
        "command": f"amber scan ARCHIVE --format jsonl {' '.join(extra)}".strip(),
        "seconds": round(seconds, 2),
        "startup_seconds": round(startup, 2),
        "posts_per_second": round(posts / seconds, 1),
        # None when the load made the start-up alone take longer than the whole run.
        "posts_per_second_after_startup": (
            round(posts / (seconds - startup), 1) if seconds > startup else None
        ),
        "posts": posts,
        "summary": summary,
        "load_average_before": [round(x, 2) for x in load],
        "stdout_sha256": hashlib.sha256(done.stdout.encode()).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--media", type=float, default=0.05)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--partition-size", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amber-backfill-", dir=args.workdir))
    try:
        archive = make_archive(
            work, posts=args.posts, media=args.media, photos=args.photos, size=args.size
        )
        bank_db = work / "bank.db"
        env = {"AMBER_DB": str(bank_db), "AMBER_VAULT": str(work / "bank-vault")}
        for step in (("bank", "create", "known"), ("bank", "add", "known")):
            extra = [work / "images" / "photo-0.png"] if step[1] == "add" else []
            made = amber(*step, *extra, env=env)
            if made.returncode != 0:
                raise SystemExit(made.stderr)
        runs = [run("plain", archive, bank_db, work, "--no-cluster")]
        for count in (int(x) for x in args.workers.split(",")):
            runs.append(
                run(
                    f"dask-{count}",
                    archive,
                    bank_db,
                    work,
                    "--cluster",
                    "local",
                    "--workers",
                    str(count),
                    "--partition-size",
                    str(args.partition_size),
                )
            )
        differ = [r["name"] for r in runs if r["stdout_sha256"] != runs[0]["stdout_sha256"]]
        if differ:
            raise SystemExit(f"the decisions of {', '.join(differ)} differ from the plain scan's")
        result = {
            "command": "python benchmarks/backfill.py " + " ".join(sys.argv[1:]),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": describe(),
            "note": (
                "2 cores shared with other engineers' work during the run (see each run's "
                "load average); 4 Dask workers on 2 cores show the limit, and the driver "
                "(matching, policy, storage, evidence: one writer) is the bound"
            ),
            "parameters": {
                "posts": args.posts,
                "media_share": args.media,
                "photos": args.photos,
                "photo_size": args.size,
                "partition_size": args.partition_size,
                "archive_bytes": archive.stat().st_size,
                "database": "sqlite",
            },
            "runs": runs,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print("| run | posts | seconds | start-up s | posts/s | after start-up | load before |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for r in runs:
            load = ", ".join(f"{x:.1f}" for x in r["load_average_before"])
            print(
                f"| {r['command']} | {r['posts']:,} | {r['seconds']:.1f} | "
                f"{r['startup_seconds']:.1f} | {r['posts_per_second']:.1f} | "
                f"{r['posts_per_second_after_startup'] or '-'} | {load} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
