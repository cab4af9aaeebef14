"""Stream ingest under load: ``amber consume`` on NATS JetStream with 1, 2 and 4 consumer
processes, side by side with the HTTP API (``amber serve``, ``POST /v1/posts``) at the same
load, each on a fresh PostgreSQL schema; then a run in which one consumer is killed.

Load: ``--posts`` posts (default 100,000), each with a fresh id: mostly benign text, about
5% harm polls (the ``vote`` rows of ``tests/data/harm_poll/labelled.jsonl``), ``--image-share``
with a small generated JPEG (a sixth of them re-uploads of a banked photo), as
``benchmarks/load_ingest.py`` mixes them. Both faces see the same closed-loop load:
``--window`` posts in flight at most (published but not yet answered on the results
subject; or HTTP requests in progress, one per client thread). Latency is from the
publish (the request) to the result received (the response).

Setups (``--setups``): ``consume:N`` runs ``amber consume nats://... --workers N``;
``http:N`` runs ``amber serve --workers N``; ``kill:N`` runs ``consume:N`` and SIGKILLs one
worker process when 40% of the results are in; the others and JetStream's redelivery
(``--ack-wait`` 5 s) finish its posts. After every stream run the script checks that each
post has exactly one decision in the database (version 1, none in ``decision_versions``)
and exactly one result on the results stream (JetStream de-duplicates republished results
by their ``Nats-Msg-Id``), and counts duplicates seen on the wire.

Run from the repository root (NATS with JetStream on 127.0.0.1:4222, PostgreSQL at
``--postgres``):

    python benchmarks/stream.py [--posts 100000] [--window 32]
        [--setups consume:1,consume:2,consume:4,http:2,kill:2]

Prints a table and writes ``benchmarks/results/stream.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from amber.synthetic import photo
from load_ingest import (
    BANKED_SEEDS,
    BENIGN_TEXTS,
    _free_port,
    _harm_polls,
    database,
    prepare_state,
    stop_server,
)
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "stream.json"
NATS = "nats://127.0.0.1:4222"


def plan(posts: int, image_share: float, seed: int, media: Path) -> list[dict[str, Any]]:
    """The posts, each with a fresh id; images are written to ``media``."""
    rng = random.Random(seed)
    polls = _harm_polls()
    fresh = [f"fresh-{n}.jpg" for n in range(40)]
    for n, name in enumerate(fresh):
        _save(photo(7000 + n, 160, 120), media / name)
    banked = [f"banked-{s}.jpg" for s in BANKED_SEEDS]
    for s, name in zip(BANKED_SEEDS, banked, strict=True):
        _save(photo(s, 640, 480).resize((320, 240)), media / name)
    run = uuid.uuid4().hex[:6]
    planned = []
    for n in range(posts):
        post: dict[str, Any] = {"id": f"{run}-{n}", "author": f"user{rng.randrange(5000)}"}
        roll = rng.random()
        if roll < image_share:
            name = rng.choice(banked) if rng.random() < 1 / 6 else rng.choice(fresh)
            post |= {"text": rng.choice(BENIGN_TEXTS), "media": [{"path": name}]}
        elif roll < image_share + 0.05:
            row = rng.choice(polls)
            post |= {"text": row["text"], "poll": row["poll"]}
        else:
            post["text"] = f"{rng.choice(BENIGN_TEXTS)} #{n}"
        planned.append(post)
    return planned


def _save(image: Any, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())


def _quantiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)} | {
        "max_ms": round(float(values.max()), 1)
    }


async def _drive_stream(
    posts: list[dict[str, Any]], stream: str, window: int, on_share: Any
) -> dict[str, Any]:
    """Publish with ``window`` posts in flight; gather the results as they come."""
    import nats

    nc = await nats.connect(NATS)
    js = nc.jetstream(timeout=30)
    sent: dict[str, float] = {}
    latency: list[float] = []
    seen: Counter[str] = Counter()
    slots = asyncio.Semaphore(window)
    finished = asyncio.Event()

    async def result(message: Any) -> None:
        post_id = json.loads(message.data)["post_id"]
        seen[post_id] += 1
        if seen[post_id] == 1:
            latency.append(time.perf_counter() - sent[post_id])
            slots.release()
            on_share(len(latency) / len(posts))
            if len(latency) == len(posts):
                finished.set()

    await nc.subscribe(f"{stream}.posts.results", cb=result)
    started = time.perf_counter()
    for post in posts:
        await slots.acquire()
        sent[post["id"]] = time.perf_counter()
        await js.publish(f"{stream}.posts", json.dumps(post).encode())
    await asyncio.wait_for(finished.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    await nc.close()
    return {
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(len(posts) / elapsed, 1),
        **_quantiles(latency),
        "duplicates_on_the_wire": sum(seen.values()) - len(seen),
    }


async def _stream_admin(stream: str, create: bool) -> None:
    import nats

    nc = await nats.connect(NATS)
    js = nc.jetstream()
    if create:
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], duplicate_window=600)
    else:
        await js.delete_stream(stream)
    await nc.close()


async def _results_on_stream(stream: str) -> Counter[str]:
    """How many results per post the results subject holds (after de-duplication)."""
    import nats
    import nats.errors
    import nats.js.api

    nc = await nats.connect(NATS)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"{stream}.posts.results",
        stream=stream,
        config=nats.js.api.ConsumerConfig(ack_policy=nats.js.api.AckPolicy.NONE),
    )
    found: Counter[str] = Counter()
    while True:
        try:
            batch = await sub.fetch(1000, timeout=2)
        except (TimeoutError, nats.errors.TimeoutError):
            break
        for message in batch:
            found[json.loads(message.data)["post_id"]] += 1
    await nc.close()
    return found


def _check(db: str, posts: list[dict[str, Any]], stream: str) -> dict[str, Any]:
    """Exactly one decision per post, version 1, and one result each on the stream."""
    engine = sa.create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT post_id, version FROM decisions")).all()
        older = conn.execute(sa.text("SELECT count(*) FROM decision_versions")).scalar_one()
    engine.dispose()
    decided = Counter(r.post_id for r in rows)
    results = asyncio.run(_results_on_stream(stream))
    wanted = {p["id"] for p in posts}
    return {
        "decisions": len(rows),
        "posts_without_decision": len(wanted - set(decided)),
        "posts_decided_twice": sum(1 for n in decided.values() if n > 1) + int(older),
        "not_version_1": sum(1 for r in rows if r.version != 1),
        "posts_without_result": len(wanted - set(results)),
        "posts_with_several_results": sum(1 for n in results.values() if n > 1),
    }


def run_stream(
    posts: list[dict[str, Any]], workers: int, root: Path, db: str, args: Any, kill: bool
) -> dict[str, Any]:
    stream = "BENCH" + uuid.uuid4().hex[:8]
    asyncio.run(_stream_admin(stream, create=True))
    log_path = root / f"consume-{stream}.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "amber", "consume", NATS, "--stream", stream,
            "--subject", f"{stream}.posts", "--workers", str(workers),
            "--max-in-flight", str(args.max_in_flight), "--ack-wait", "5",
            "--base", str(root / "media"), "--db", db, "--vault", str(root / "vault"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("w"),
        cwd=root,
        start_new_session=True,
    )  # fmt: skip
    killed: list[int] = []

    def on_share(share: float) -> None:
        if kill and not killed and share >= 0.4:
            pids = [
                int(line.rsplit("pid ", 1)[1].rstrip(")"))
                for line in log_path.read_text().splitlines()
                if line.startswith("worker ") and "started" in line
            ]
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    try:
        deadline = time.monotonic() + 120
        while log_path.read_text().count("consuming nats") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"amber consume did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        measured = asyncio.run(_drive_stream(posts, stream, args.window, on_share))
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        measured |= {"exit_code": code, "killed_pid": killed[0] if killed else None}
        measured["check"] = _check(db, posts, stream)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # it and its workers
        asyncio.run(_stream_admin(stream, create=False))
    return measured


def run_http(
    posts: list[dict[str, Any]], workers: int, root: Path, db: str, token: str, args: Any
) -> dict[str, Any]:
    port = _free_port()
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "amber", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--db", db, "--vault", str(root / "vault"), "--workers", str(workers),
            "--media-root", str(root / "media"), "--no-webhooks",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/health", headers=headers, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"amber serve did not come up: {(root / 'serve.log').read_text()}"
                )
            time.sleep(0.2)
        queue = iter(posts)
        lock = threading.Lock()
        latency: list[float] = []
        failed: Counter[str] = Counter()

        def client() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                while True:
                    with lock:
                        post = next(queue, None)
                    if post is None:
                        return
                    t0 = time.perf_counter()
                    answer = http.post("/v1/posts", json=post)
                    took = time.perf_counter() - t0
                    with lock:
                        if answer.status_code == 200:
                            latency.append(took)
                        else:
                            failed[str(answer.status_code)] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.window)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        stop_server(process)
    return {
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(len(latency) / elapsed, 1),
        **_quantiles(latency),
        "errors": dict(failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000, help="posts per setup")
    parser.add_argument("--window", type=int, default=32, help="posts in flight at most")
    parser.add_argument("--max-in-flight", type=int, default=16, help="per consumer process")
    parser.add_argument("--image-share", type=float, default=0.05, help="posts with an image")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--setups", default="consume:1,consume:2,consume:4,http:2,kill:2", help="see above"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    runs = []
    for setup in args.setups.split(","):
        kind, workers = setup.split(":")
        with tempfile.TemporaryDirectory(prefix="amber-stream-") as folder:
            root = Path(folder)
            (root / "media").mkdir()
            posts = plan(args.posts, args.image_share, args.seed, root / "media")
            with database("postgresql", root, args.postgres) as db:
                token = prepare_state(root, db)
                print(f"{setup}: {len(posts)} posts ...", file=sys.stderr, flush=True)
                if kind == "http":
                    measured = run_http(posts, int(workers), root, db, token, args)
                else:
                    measured = run_stream(posts, int(workers), root, db, args, kind == "kill")
        runs.append({"setup": setup, "face": kind, "processes": int(workers), **measured})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print("| setup | decisions/s | p50 ms | p95 ms | p99 ms | check |")
    print("|---|---:|---:|---:|---:|---|")
    for r in runs:
        check = r.get("check")
        ok = "-" if check is None else ("ok" if not any(
            v for k, v in check.items() if k != "decisions"
        ) else json.dumps(check))  # fmt: skip
        print(
            f"| {r['setup']} | {r['decisions_per_s']} | {r['p50_ms']} | {r['p95_ms']} "
            f"| {r['p99_ms']} | {ok} |"
        )
    args.out.write_text(
        json.dumps(
            {
                "machine": describe(),
                "posts": args.posts,
                "window": args.window,
                "max_in_flight": args.max_in_flight,
                "image_share": args.image_share,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
