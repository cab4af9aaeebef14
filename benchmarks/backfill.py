"""Backfill: posts/s of ``amber scan --cluster local`` with 1, 2 and 4 Dask workers next to
a plain ``amber scan`` of the same archive.

Builds a throw-away state in a temporary folder:

- a bank of one generated photo (``amber.synthetic.photo``), made with the real commands
  ``amber bank create`` and ``amber bank add``;
- an archive of ``--posts`` posts in one JSONL file: short texts of a few words, each by
  one of 5,000 authors, and a share ``--media`` carrying one small PNG (``--size``, one of
  ``--photos`` distinct generated photos; one in ``--photos`` of them is the banked one,
  so some posts are removed and preserved in the vault).

Then, in turn, each of these runs once on the same archive, each with a fresh bank
database (a copy of the SQLite file; on PostgreSQL, ``--database URL``, a new schema made
with the same commands and dropped afterwards) and an empty vault, as a subprocess
``python -m amber scan ARCHIVE --format jsonl``:

- ``plain``: ``--no-cluster`` (media hashed in a process pool, one process per core);
- ``dask-N``: ``--cluster local --workers N --partition-size P`` for N in 1, 2, 4: a
  local Dask cluster of N worker processes reading, parsing and hashing partitions of P
  lines while this process decides.

Every time is the wall time of the whole subprocess, start-up, the cluster's start and
imports included; the start-up alone (the same command on a one-post archive) is shown
beside it, and posts/s after it. Each run's stdout (the JSONL decisions) must be the same
as the plain run's, or the benchmark fails.

Run from the repository root:

    python benchmarks/backfill.py [--posts 10000] [--media-share 0.05] [--photos 50]
        [--photo-size 128x128] [--partition-size 1000] [--workers 1,2,4] [--workdir DIR]
        [--database postgresql://postgres@127.0.0.1/test] [--out FILE] [--key NAME]

``--media-share 0.5 --photo-size 640x480`` makes an archive where hashing dominates;
``--workers ""`` runs the plain scan alone.
Prints a Markdown table and writes ``benchmarks/results/backfill.json`` (with ``--key``,
under that key of the file, its other keys kept).
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amber.engine import default_index_dir
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


def make_bank(db: str, folder: Path, banked: Path) -> None:
    """The bank ``known`` holding ``banked``, made with the real commands in ``db``."""
    env = {"AMBER_DB": db, "AMBER_VAULT": str(folder / "bank-vault")}
    for step in (("bank", "create", "known"), ("bank", "add", "known", banked)):
        made = amber(*step, env=env)
        if made.returncode != 0:
            raise SystemExit(made.stderr)


@contextmanager
def fresh_db(database: str | None, bank_db: Path, folder: Path, banked: Path) -> Iterator[str]:
    """A database holding the bank: a copy of ``bank_db`` (SQLite), or a new schema of the
    PostgreSQL server ``database`` with the bank made in it, dropped on leaving."""
    if database is None:
        db = folder / "amber.db"
        shutil.copy(bank_db, db)
        yield str(db)
        return
    server = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = f"backfill_{int(time.time())}_{os.getpid()}_{folder.name.replace('-', '_')}"
    with server.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        url = f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
        make_bank(url, folder, banked)
        yield url
    finally:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        server.dispose()
        shutil.rmtree(default_index_dir(url), ignore_errors=True)  # in the user's cache


def scan(
    name: str, archive: Path, db: str, folder: Path, *extra: str
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds of one scan of ``archive`` on the database ``db``, and what it printed."""
    env = {"AMBER_DB": db, "AMBER_VAULT": str(folder / "vault")}
    started = time.perf_counter()
    done = amber("scan", archive, "--format", "jsonl", *extra, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done


def run(
    name: str, archive: Path, bank: tuple[str | None, Path, Path], work: Path, *extra: str
) -> dict[str, Any]:
    """One scan of ``archive``, and the same command's start-up (on a one-post archive);
    ``bank``: the ``--database`` (``None``: SQLite), the SQLite bank and the banked photo."""
    one = work / "one.jsonl"
    one.write_text(archive.open(encoding="utf-8").readline(), encoding="utf-8")
    database, bank_db, banked = bank
    folder = work / f"{name}-startup"
    folder.mkdir()
    with fresh_db(database, bank_db, folder, banked) as db:
        startup, _ = scan(name, one, db, folder, *extra)
    folder = work / name
    folder.mkdir()
    with fresh_db(database, bank_db, folder, banked) as db:
        load = os.getloadavg()
        seconds, done = scan(name, archive, db, folder, *extra)
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
    parser.add_argument("--media-share", "--media", dest="media", type=float, default=0.05)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--photo-size", "--size", dest="size", default="128x128")
    parser.add_argument("--partition-size", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--database", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--key", help="write the result under this key of --out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amber-backfill-", dir=args.workdir))
    try:
        archive = make_archive(
            work, posts=args.posts, media=args.media, photos=args.photos, size=args.size
        )
        bank_db = work / "bank.db"
        banked = work / "images" / "photo-0.png"
        make_bank(str(bank_db), work, banked)
        bank = (args.database, bank_db, banked)
        runs = [run("plain", archive, bank, work, "--no-cluster")]
        for count in (int(x) for x in args.workers.split(",") if x):
            runs.append(
                run(
                    f"dask-{count}",
                    archive,
                    bank,
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
                "database": "postgresql" if args.database else "sqlite",
            },
            "runs": runs,
        }
        if args.key:
            known = json.loads(args.out.read_text()) if args.out.exists() else {}
            result = {**known, args.key: result}
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
