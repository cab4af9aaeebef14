"""What one decision costs each shared part of a deployment, measured here, and what that
means for 1, 10 and 100 machines (docs/scaling.md).

This machine has 2 cores: it cannot run 10 or 100 amber machines, nor a PostgreSQL server
the size such a fleet needs. So the script measures the cost of a decision where it is
paid, then calculates:

* **amber**: CPU seconds per decision in the process that decides (hashing, the harm-poll
  check, matching, policy, storage), one process, in-process `Engine.scan`;
* **PostgreSQL**: CPU seconds of the server's processes per decision (``/proc`` of every
  ``postgres`` process, before and after: run it on a quiet machine) and WAL bytes per
  decision (``pg_current_wal_lsn()``), the two things a primary cannot share out;
* **evidence**: the same for a preserved decision (a copy of a banked photo, removed and
  kept, its custody record appended in the decision's transaction, ``AMBER_VAULT_LOG=
  database``), objects in a local folder (bytes per preserved post are reported: the
  object store's write load);

for three kinds of posts: text (most posts on a platform), a 640x480 JPEG no bank holds
(allowed) and a re-encoded copy of a banked photo (removed and preserved). The calculation
for a fleet takes a mix (``--preserved`` share of posts, ``--image-share`` share with a
photo) and machines of ``--cores`` cores, and says for 1, 10 and 100 machines: decisions
per second amber can make, the PostgreSQL cores and WAL rate that load needs, and the
object-store write rate. It is arithmetic on the measured figures; its assumptions are
printed beside it.

Run from the repository root, PostgreSQL at ``--postgres`` (a database amber may create
schemas in):

    python benchmarks/scaling_model.py [--posts 2000] [--cores 16]

Prints Markdown tables and writes ``benchmarks/results/scaling_model.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amber import open_engine
from amber.posts import Post, parse_post
from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "scaling_model.json"
VOCABULARY = (
    "sunset harbour tonight coffee rain city train friends weekend market garden concert "
    "match goal team dinner recipe holiday beach mountain snow morning news vote school"
)
TICKS = os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds (user + system) used so far by every live ``postgres`` process."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def wal_lsn(server: sa.Engine) -> int:
    with server.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar())


def text_posts(n: int, tag: str) -> list[Post]:
    import random

    rng, words = random.Random(tag), VOCABULARY.split()
    return [
        parse_post(
            {
                "id": f"{tag}-{i}",
                "author": f"user-{rng.randrange(5000)}",
                "text": " ".join(rng.choice(words) for _ in range(rng.randrange(4, 20))),
            },
            base=Path.cwd(),
            source="<benchmark>",
        )
        for i in range(n)
    ]


def photo_posts(n: int, tag: str, folder: Path, banked: Path | None = None) -> list[Post]:
    """``n`` posts with a 640x480 JPEG each: re-encodes of ``banked`` (removed and kept),
    or without it photos no bank holds (allowed)."""
    from PIL import Image

    original = None if banked is None else Image.open(banked)
    posts = []
    for i in range(n):
        path = folder / f"{tag}-{i}.jpg"
        if original is None:
            photo(1000 + i, 640, 480).save(path, "JPEG", quality=85)
        else:
            original.save(path, "JPEG", quality=80 + i % 15)
        posts.append(
            parse_post(
                {"id": f"{tag}-{i}", "author": f"user-{i}", "media": [{"path": str(path)}]},
                base=folder,
                source="<benchmark>",
            )
        )
    return posts


def measure(engine: Any, server: sa.Engine, posts: list[Post]) -> dict[str, float]:
    """Decide ``posts`` in this process; per decision: amber CPU, PostgreSQL CPU, WAL."""
    wal, pg, cpu, wall = wal_lsn(server), postgres_cpu(), time.process_time(), time.perf_counter()
    results = [r for r in engine.scan(posts, workers=1) if not isinstance(r, Exception)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg, wal = postgres_cpu() - pg, wal_lsn(server) - wal
    n = len(posts)
    verdicts: dict[str, int] = {}
    for r in results:
        verdicts[r.outcome.verdict.value] = verdicts.get(r.outcome.verdict.value, 0) + 1
    return {
        "posts": n,
        "verdicts": verdicts,
        "wall_s": round(wall, 2),
        "amber_cpu_ms": round(1000 * cpu / n, 3),
        "postgres_cpu_ms": round(1000 * pg / n, 3),
        "wal_bytes": round(wal / n),
    }


def calculate(
    costs: dict[str, dict[str, Any]],
    *,
    cores: int,
    image_share: float,
    preserved: float,
    object_bytes: float,
) -> list[dict[str, Any]]:
    """Per fleet size: what amber's cores decide and what that asks of the shared parts."""
    text, new, kept = costs["text"], costs["photo"], costs["preserved_photo"]

    def mix(key: str) -> float:
        # preserved posts are copies of banked photos, part of the image posts
        return (
            (1 - image_share) * text[key]
            + (image_share - preserved) * new[key]
            + preserved * kept[key]
        )

    amber_ms, pg_ms, wal = mix("amber_cpu_ms"), mix("postgres_cpu_ms"), mix("wal_bytes")
    rows = []
    for machines in (1, 10, 100):
        rate = machines * cores * 1000 / amber_ms
        rows.append(
            {
                "machines": machines,
                "cores_each": cores,
                "decisions_per_s": round(rate),
                "decisions_per_day_millions": round(rate * 86400 / 1e6, 1),
                "postgres_cores": round(rate * pg_ms / 1000, 1),
                "wal_mb_per_s": round(rate * wal / 1e6, 1),
                "preserved_per_s": round(rate * preserved),
                "objects_mb_per_s": round(rate * preserved * object_bytes / 1e6, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000, help="text posts measured")
    parser.add_argument("--photos", type=int, default=200, help="photo posts measured")
    parser.add_argument("--cores", type=int, default=16, help="cores per amber machine")
    parser.add_argument("--image-share", type=float, default=0.3)
    parser.add_argument("--preserved", type=float, default=0.01)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    schema = f"scaling_{secrets.token_hex(4)}"
    server = sa.create_engine(
        args.postgres.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{args.postgres}?options=-csearch_path%3D{schema}"
    os.environ["AMBER_VAULT_LOG"] = "database"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            banked = folder / "banked.jpg"
            photo(7, 640, 480).save(banked, "JPEG", quality=90)
            engine = open_engine(db=url, vault=folder / "vault")
            try:
                engine.banks.create("results", action="remove", label="execution-photo")
                engine.banks.add_files("results", [banked])
                # warm up: the harm-poll lexicons, the index, the compiled kernels
                list(engine.scan(text_posts(50, "warm"), workers=1))
                costs = {
                    "text": measure(engine, server, text_posts(args.posts, "text")),
                    "photo": measure(engine, server, photo_posts(args.photos, "new", folder)),
                    "preserved_photo": measure(
                        engine, server, photo_posts(args.photos, "copy", folder, banked)
                    ),
                }
                engine.sign_evidence()
            finally:
                engine.close()
            objects = sum(f.stat().st_size for f in (folder / "vault").rglob("*") if f.is_file())
            object_bytes = objects / args.photos
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    fleet = calculate(
        costs,
        cores=args.cores,
        image_share=args.image_share,
        preserved=args.preserved,
        object_bytes=object_bytes,
    )
    result = {
        "command": "python benchmarks/scaling_model.py "
        f"--posts {args.posts} --photos {args.photos} --cores {args.cores} "
        f"--image-share {args.image_share} --preserved {args.preserved}",
        "machine": describe(),
        "costs_per_decision": costs,
        "vault_bytes_per_preserved_post": round(object_bytes),
        "assumptions": {
            "cores_per_machine": args.cores,
            "image_share": args.image_share,
            "preserved_share": args.preserved,
            "amber_scales_with_cores": "decisions are independent: one core decides "
            "1000 / amber_cpu_ms posts a second, a machine cores times that",
            "posts": "a post is text only, a 640x480 JPEG no bank holds (allowed), or a "
            "re-encoded copy of a banked photo (removed and preserved)",
        },
        "fleet": fleet,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("| post | decisions | amber CPU ms | PostgreSQL CPU ms | WAL bytes |")
    print("|---|---:|---:|---:|---:|")
    for kind, c in costs.items():
        print(
            f"| {kind} | {c['posts']} | {c['amber_cpu_ms']} | {c['postgres_cpu_ms']} "
            f"| {c['wal_bytes']} |"
        )
    print(f"\nvault bytes per preserved post: {round(object_bytes)}\n")
    print(
        "| machines | decisions/s | M/day | PostgreSQL cores | WAL MB/s | preserved/s "
        "| objects MB/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in fleet:
        print(
            f"| {r['machines']} x {r['cores_each']} | {r['decisions_per_s']:,} "
            f"| {r['decisions_per_day_millions']} | {r['postgres_cores']} "
            f"| {r['wal_mb_per_s']} | {r['preserved_per_s']:,} | {r['objects_mb_per_s']} |"
        )


if __name__ == "__main__":
    main()
