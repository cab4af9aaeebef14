"""Load on the ingest endpoints of a real ``amber serve`` on loopback.

Builds a throw-away state (a temporary folder with its own database and vault), a bank of
a few generated photos and an ingest token; starts ``python -m amber serve`` on a free
127.0.0.1 port; then ``--clients`` threads, each with its own keep-alive ``httpx.Client``,
send up to ``--requests`` posts in all, for at most ``--seconds``:

* ``POST /v1/posts/upload`` (multipart, one generated JPEG per post), the share
  ``1 - --text-share`` of requests;
* ``POST /v1/posts`` (JSON, text only), the share ``--text-share``.

Posts are a mix: about 20% re-uploads of a banked photo (mirrored and/or resized, re-encoded;
uploads only), about 10% harm polls (the ``vote`` rows of ``tests/data/harm_poll/labelled.jsonl``),
the rest benign. Every post has a fresh id, so none is answered from the stored decision.
All images are generated and encoded before the clock starts. The server is stopped at the
end, whatever happens.

The same planned load is run against each ``--setups`` entry in turn, ``BACKEND:WORKERS``
(``sqlite`` or ``postgresql``, and ``amber serve --workers``), each on fresh state; the first
setup is the baseline the others are compared with. PostgreSQL runs get a throw-away schema
in the ``--postgres`` database, dropped afterwards.

Run from the repository root:

    python benchmarks/load_ingest.py [--clients 8] [--requests 400] [--seconds 60]
        [--setups sqlite:1,sqlite:2,postgresql:1,postgresql:2]

Prints Markdown tables and writes ``benchmarks/results/load_ingest.json``. Client and server
share the machine's cores, so the figures are a floor for a server on its own host.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from PIL import Image, ImageOps

from amber.engine import default_index_dir, open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
POLLS = ROOT / "tests" / "data" / "harm_poll" / "labelled.jsonl"
OUT = ROOT / "benchmarks" / "results" / "load_ingest.json"
UPLOAD, TEXT = "/v1/posts/upload", "/v1/posts"
BANKED_SEEDS = range(9000, 9006)
BENIGN_TEXTS = (
    "Sunset over the harbour tonight.",
    "Our garden finally has tomatoes!",
    "Which cake for Saturday? Vote below.",
    "Trail run this morning, 12 km in the fog.",
    "New cafe on the corner does great coffee.",
    "Throwback to last summer's road trip.",
    "Finished the puzzle: 1,000 pieces, two weeks.",
    "The kids built a snowman taller than the door.",
)


@dataclass(frozen=True, slots=True)
class Planned:
    """One request to send: where, what kind of post, and its body."""

    endpoint: str
    kind: str  # "reupload", "harm_poll" or "benign"
    post: dict[str, Any]
    jpeg: bytes | None


@dataclass(frozen=True, slots=True)
class Sent:
    """One request's outcome as the client saw it."""

    endpoint: str
    kind: str
    seconds: float
    status: str  # the HTTP status, or the transport error's class name
    verdict: str | None


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _fresh_jpeg(seed: int) -> bytes:
    return _jpeg(photo(seed, 640, 480))


def _variant_jpeg(seed: int, variant: int) -> bytes:
    """A banked photo as a re-uploader would post it: mirrored, resized, re-encoded."""
    image = photo(seed, 640, 480)
    if variant % 2:
        image = ImageOps.mirror(image)
    scale = (1.0, 0.75, 0.5)[variant % 3]
    if scale != 1.0:
        image = image.resize((int(640 * scale), int(480 * scale)), Image.Resampling.LANCZOS)
    return _jpeg(image, quality=(85, 70)[variant % 2])


def _harm_polls() -> list[dict[str, Any]]:
    with POLLS.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r["label"] == "vote"]


def plan(*, requests: int, text_share: float, seed: int) -> list[Planned]:
    """The requests to send, in order; JPEGs encoded here (two processes), not in the loop."""
    rng = random.Random(seed)
    polls = _harm_polls()
    closes_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    shapes: list[tuple[str, str]] = []
    for _ in range(requests):
        endpoint = TEXT if rng.random() < text_share else UPLOAD
        roll = rng.random()
        kind = "harm_poll" if roll < 0.10 else "reupload" if roll < 0.30 else "benign"
        if kind == "reupload" and endpoint == TEXT:
            kind = "benign"  # a re-upload needs its media
        shapes.append((endpoint, kind))
    jobs: list[tuple[int, int | None]] = []  # (seed, variant) per upload
    for i, (endpoint, kind) in enumerate(shapes):
        if endpoint == UPLOAD:
            banked = kind == "reupload"
            jobs.append(
                (rng.choice(BANKED_SEEDS), rng.randrange(6))
                if banked
                else (seed * 100_000 + i, None)
            )
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        fresh_list = list(pool.map(_fresh_jpeg, [s for s, v in jobs if v is None], chunksize=8))
        variant_list = [pool.submit(_variant_jpeg, s, v).result() for s, v in jobs if v is not None]
    planned: list[Planned] = []
    for i, (endpoint, kind) in enumerate(shapes):
        post: dict[str, Any] = {"id": f"load-{seed}-{i}", "author": f"user{rng.randrange(50)}"}
        if kind == "harm_poll":
            row = rng.choice(polls)
            post["text"] = row["text"]
            if row["poll"]:
                post["poll"] = {**row["poll"], "closes_at": closes_at}
        else:
            post["text"] = rng.choice(BENIGN_TEXTS)
        jpeg = None
        if endpoint == UPLOAD:
            jpeg = variant_list.pop(0) if kind == "reupload" else fresh_list.pop(0)
        planned.append(Planned(endpoint, kind, post, jpeg))
    return planned


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_state(root: Path, db: str) -> str:
    """A database with one bank of the banked photos, and an ingest token (returned)."""
    photos = root / "banked"
    photos.mkdir()
    paths = []
    for seed in BANKED_SEEDS:
        path = photos / f"{seed}.jpg"
        path.write_bytes(_fresh_jpeg(seed))
        paths.append(path)
    with open_engine(db=db, vault=root / "vault") as engine:
        engine.banks.create("known", label="load-test-known")
        added = engine.banks.add_files("known", paths)
        if len(added.added) != len(paths):
            raise RuntimeError(f"banked {len(added.added)} of {len(paths)} photos")
        return engine.tokens.create("load", parse_scopes("ingest"))[1]


def start_server(
    root: Path, token: str, db: str, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m amber serve`` on a free loopback port, once every worker answers."""
    port = _free_port()
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "amber",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db,
            "--vault",
            str(root / "vault"),
            "--workers",
            str(workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    answered: set[int] = set()
    while True:
        try:
            health = httpx.get(
                url + "/v1/health", headers={"authorization": f"Bearer {token}"}, timeout=5
            )
            if health.status_code == 200:
                answered.add(health.json()["worker"])
                if len(answered) == workers:
                    return process, url
                continue
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(
                f"amber serve did not come up: {(root / 'serve.log').read_text()[-2000:]}"
            )
        time.sleep(0.2)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it does not stop within ten seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process and its living children (Linux /proc), or
    None elsewhere."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    if pid not in stats:
        return None
    family, grew = {pid}, True
    while grew:
        more = {p for p, fields in stats.items() if int(fields[1]) in family} - family
        family |= more
        grew = bool(more)
    ticks = sum(int(stats[p][11]) + int(stats[p][12]) for p in family)
    return ticks / os.sysconf("SC_CLK_TCK")


def drive(
    url: str, token: str, planned: list[Planned], *, clients: int, seconds: float
) -> tuple[list[Sent], float]:
    """Send ``planned`` from ``clients`` threads until done or ``seconds`` pass."""
    lock = threading.Lock()
    position = 0
    sent: list[Sent] = []
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        nonlocal position
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if position >= len(planned):
                        return
                    item = planned[position]
                    position += 1
                t0 = time.perf_counter()
                verdict = None
                try:
                    if item.endpoint == UPLOAD:
                        response = http.post(
                            UPLOAD,
                            data={"post": json.dumps(item.post)},
                            files=[("media", ("photo.jpg", item.jpeg or b"", "image/jpeg"))],
                        )
                    else:
                        response = http.post(TEXT, json=item.post)
                    status = str(response.status_code)
                    if response.status_code == 200:
                        verdict = response.json().get("verdict")
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                done = Sent(item.endpoint, item.kind, time.perf_counter() - t0, status, verdict)
                with lock:
                    sent.append(done)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent, time.perf_counter() - started


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summarise(sent: list[Sent], elapsed: float) -> dict[str, Any]:
    """Throughput, latency quantiles, errors and verdicts, per endpoint and overall."""
    endpoints: dict[str, Any] = {}
    for name in (UPLOAD, TEXT, "all"):
        rows = [s for s in sent if name in ("all", s.endpoint)]
        times = sorted(s.seconds * 1000 for s in rows)
        endpoints[name] = {
            "requests": len(rows),
            "ok": sum(s.status == "200" for s in rows),
            "errors": sum(s.status != "200" for s in rows),
            "requests_per_s": round(len(rows) / elapsed, 2) if elapsed else 0.0,
            "p50_ms": round(_quantile(times, 0.50), 1),
            "p95_ms": round(_quantile(times, 0.95), 1),
            "p99_ms": round(_quantile(times, 0.99), 1),
            "max_ms": round(times[-1], 1) if times else 0.0,
        }
    verdicts: dict[str, dict[str, int]] = {}
    for s in sent:
        key = f"{s.kind} via {s.endpoint}"
        verdicts.setdefault(key, Counter())[s.verdict or "error"] += 1
    return {
        "elapsed_s": round(elapsed, 2),
        "endpoints": endpoints,
        "errors_by_status": dict(Counter(s.status for s in sent if s.status != "200")),
        "verdicts": {k: dict(sorted(v.items())) for k, v in sorted(verdicts.items())},
    }


def _machine() -> dict[str, Any]:
    return describe(note="client and server share the same cores")


def render(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables."""
    lines = [
        "| endpoint | requests | ok | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in summary["endpoints"].items():
        lines.append(
            f"| {name} | {e['requests']} | {e['ok']} | {e['errors']} | {e['requests_per_s']} | "
            f"{e['p50_ms']} | {e['p95_ms']} | {e['p99_ms']} | {e['max_ms']} |"
        )
    seen = sorted({v for counts in summary["verdicts"].values() for v in counts})
    lines += ["", "| posts | " + " | ".join(seen) + " |", "|---" + "|---:" * len(seen) + "|"]
    for key, counts in summary["verdicts"].items():
        lines.append(f"| {key} | " + " | ".join(str(counts.get(v, 0)) for v in seen) + " |")
    errors = summary["errors_by_status"]
    lines += ["", "errors by status: " + (json.dumps(errors) if errors else "none")]
    return "\n".join(lines)


@contextmanager
def database(backend: str, root: Path, postgres: str) -> Iterator[str]:
    """A fresh database for one setup: a SQLite file, or a throw-away PostgreSQL schema."""
    if backend == "sqlite":
        yield str(root / "amber.db")
        return
    schema = f"amber_load_{secrets.token_hex(4)}"
    admin = sa.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
        shutil.rmtree(default_index_dir(url), ignore_errors=True)  # the index it built


def run_setup(
    backend: str, workers: int, planned: list[Planned], args: argparse.Namespace
) -> dict[str, Any]:
    """One setup on fresh state: start the server, drive the load, stop it."""
    with (
        tempfile.TemporaryDirectory(prefix="amber-load-") as folder,
        database(backend, Path(folder), args.postgres) as db,
    ):
        root = Path(folder)
        token = prepare_state(root, db)
        process, url = start_server(root, token, db, workers)
        try:
            print(
                f"{backend} with {workers} worker(s): {args.clients} clients, "
                f"{len(planned)} requests at most, {args.seconds:g} s at most ...",
                file=sys.stderr,
            )
            server_cpu0, client_cpu0 = _cpu_seconds(process.pid), time.process_time()
            sent, elapsed = drive(url, token, planned, clients=args.clients, seconds=args.seconds)
            server_cpu1, client_cpu1 = _cpu_seconds(process.pid), time.process_time()
        finally:
            stop_server(process)
    summary = summarise(sent, elapsed)
    summary["cpu_s"] = {
        "server": None
        if server_cpu0 is None or server_cpu1 is None
        else round(server_cpu1 - server_cpu0, 1),
        "client": round(client_cpu1 - client_cpu0, 1),
    }
    return {
        "backend": backend,
        "workers": workers,
        "stopped_by": "requests" if len(sent) == len(planned) else "seconds",
        **summary,
    }


def compare(runs: list[dict[str, Any]]) -> str:
    """One row per setup, with throughput as a ratio to the first."""
    base = runs[0]["endpoints"]["all"]["requests_per_s"] or 1.0
    lines = [
        "| setup | req/s | vs first | p50 ms | p99 ms | errors | server CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        e = run["endpoints"]["all"]
        lines.append(
            f"| {run['backend']}, {run['workers']} worker(s) | {e['requests_per_s']} | "
            f"{e['requests_per_s'] / base:.2f}x | {e['p50_ms']} | {e['p99_ms']} | "
            f"{e['errors']} | {run['cpu_s']['server']} |"
        )
    return "\n".join(lines)


def _setups(text: str) -> list[tuple[str, int]]:
    setups = []
    for item in text.split(","):
        backend, _, workers = item.strip().partition(":")
        if backend not in ("sqlite", "postgresql") or not workers.isdigit() or int(workers) < 1:
            raise argparse.ArgumentTypeError(
                f"setup {item!r}: use BACKEND:WORKERS with sqlite or postgresql, e.g. sqlite:2"
            )
        setups.append((backend, int(workers)))
    return setups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="most requests to send")
    parser.add_argument("--seconds", type=float, default=60.0, help="most seconds to send for")
    parser.add_argument(
        "--text-share", type=float, default=0.25, help="share of requests to POST /v1/posts"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the mix and the images")
    parser.add_argument(
        "--setups",
        type=_setups,
        default=_setups("sqlite:1,sqlite:2,postgresql:1,postgresql:2"),
        help="BACKEND:WORKERS,... to run in turn (the first is the baseline)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://127.0.0.1:5432/test",
        help="PostgreSQL database for the postgresql setups (a schema is made and dropped)",
    )
    parser.add_argument(
        "--output", "--out", dest="out", type=Path, default=OUT, help="where to write the JSON"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.seconds <= 0:
        parser.error("--clients, --requests and --seconds must be positive")

    print("generating images ...", file=sys.stderr)
    planned = plan(requests=args.requests, text_share=args.text_share, seed=args.seed)
    runs = [run_setup(backend, workers, planned, args) for backend, workers in args.setups]
    result = {
        "command": " ".join(["python", "benchmarks/load_ingest.py", *(argv or sys.argv[1:])]),
        "clients": args.clients,
        "requests_planned": len(planned),
        "seconds_limit": args.seconds,
        "text_share": args.text_share,
        "seed": args.seed,
        "runs": runs,
        "machine": _machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for run in runs:
        print(f"\n## {run['backend']}, {run['workers']} worker(s)\n")
        print(render(run))
    print("\n## Side by side\n")
    print(compare(runs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
