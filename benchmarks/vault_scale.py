"""Preserved posts per second with 1 and 4 writer processes: the file log (one
``records.jsonl`` under ``flock``, a checkpoint signed per append) before, and the custody
log in PostgreSQL (one transaction per record, signed in batches by one signer) after, with
the objects in the vault's folder; and, with ``--s3``, in a local S3 server (moto_server).

Each writer process opens the vault and preserves its share of the posts (a generated
~30 KB JPEG each, cycling over ``--images`` distinct ones, the post JSON and decision
distinct per post) with ``Vault.preserve``; the time runs until every writer is done and
the log is signed (one ``Vault.sign`` at the end for the database log). The result is
verified (``verify_vault``) and every record counted.

Run from the repository root, with PostgreSQL at ``--postgres``:

    python benchmarks/vault_scale.py [--posts 400] [--writers 1,4] [--s3]

Prints a Markdown table and writes ``benchmarks/results/vault_scale.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from amber.evidence.vault import Vault
from amber.evidence.verify import verify_vault
from amber.store.db import connect
from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "vault_scale.json"


def _media(folder: Path, count: int) -> list[str]:
    paths = []
    for seed in range(count):
        buffer = io.BytesIO()
        photo(seed, 320, 240).save(buffer, "JPEG", quality=85)
        path = folder / f"{seed}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(str(path))
    return paths


def _write(vault_path: str, db: str | None, media: list[str], writer: int, posts: int) -> int:
    engine = None if db is None else connect(db)
    vault = Vault.open(Path(vault_path), db=engine)
    for n in range(posts):
        file = Path(media[(writer * posts + n) % len(media)])
        vault.preserve(
            post_id=f"w{writer}-p{n}",
            post=json.dumps({"id": f"w{writer}-p{n}", "media": [{"path": file.name}]}),
            decision={"verdict": "remove", "post_id": f"w{writer}-p{n}"},
            media=[(0, file.name, file, hashlib.sha256(file.read_bytes()).hexdigest())],
            source="benchmark",
            policy="default@0",
        )
    return posts


def _run(
    mode: str,
    writers: int,
    posts: int,
    media: list[str],
    base: Path,
    db: str | None,
    objects: str | None,
) -> dict[str, Any]:
    path = base / f"{mode}-{writers}"
    engine = None if db is None else connect(db)
    Vault.open(path, db=engine, log="file" if db is None else "database", objects=objects)
    share = posts // writers
    start = time.perf_counter()
    with ProcessPoolExecutor(writers) as pool:
        jobs = [pool.submit(_write, str(path), db, media, w, share) for w in range(writers)]
        done = sum(job.result() for job in jobs)
    vault = Vault.open(path, db=engine)
    vault.sign()
    seconds = time.perf_counter() - start
    report = verify_vault(path, db=engine)
    return {
        "mode": mode,
        "writers": writers,
        "posts": done,
        "seconds": round(seconds, 3),
        "posts_per_s": round(done / seconds, 1),
        "verified": report.ok,
        "records": report.records,
        "problems": report.problems[:3],
    }


def _schema(server: str) -> str:
    """A fresh schema on the server; the URL that uses it."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    admin.dispose()
    return str(
        sa.make_url(server)
        .update_query_dict({"options": f"-csearch_path={name}"})
        .render_as_string(hide_password=False)
    )


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    import boto3

    boto3.client("s3").create_bucket(Bucket="vault")
    return server, endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=400)
    parser.add_argument("--writers", default="1,4")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--s3", action="store_true", help="also objects in moto_server")
    args = parser.parse_args()
    counts = [int(w) for w in args.writers.split(",")]
    rows = []
    moto = None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "media").mkdir()
        media = _media(base / "media", args.images)
        modes: list[tuple[str, bool, str | None]] = [
            ("file log + flock (before)", False, None),
            ("PostgreSQL log, folder objects (after)", True, None),
        ]
        if args.s3:
            moto, _ = _moto()
            modes.append(("PostgreSQL log, S3 objects (moto)", True, "s3://vault/bench"))
        try:
            for mode, database, objects in modes:
                for writers in counts:
                    db = _schema(args.postgres) if database else None
                    if objects is not None:
                        objects = f"s3://vault/bench-{writers}"
                    row = _run(mode, writers, args.posts, media, base, db, objects)
                    rows.append(row)
                    print(
                        f"{mode}, {writers} writer(s): {row['posts_per_s']} posts/s "
                        f"(verified: {row['verified']})",
                        file=sys.stderr,
                    )
        finally:
            if moto is not None:
                moto.terminate()
    print("| log and objects | writers | posts | seconds | posts/s | verified |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['writers']} | {r['posts']} | {r['seconds']} | "
            f"{r['posts_per_s']} | {r['verified']} |"
        )
    OUT.write_text(
        json.dumps(
            {
                "command": "python benchmarks/vault_scale.py " + " ".join(sys.argv[1:]),
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": describe(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
