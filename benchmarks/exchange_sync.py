"""Exchange sync at scale: a 100,000-record exchange fetched, then 1% of it changed and
fetched again (the incremental re-sync HMA's users ask for), through amber's library.

Two sources, both local (nothing leaves the machine):

* ``fb_threatexchange``: the ThreatExchange-style server of the tests
  (``tests/threatexchange_server.py``) on a real socket in a thread, 100 updates a page as
  python-threatexchange asks for them; the 1% is half new records, 30% deletions
  (tombstones) and 20% our own false-positive marks (entries held out);
* ``local_file``: a python-threatexchange hash file, which every fetch reads whole; the 1%
  is half new lines and half lines removed.

Each run times the first (full) fetch and the re-sync, wall time and this process's CPU
time (the server's threads are in it), on a fresh SQLite file (or ``--db``, a PostgreSQL
URL, whose schema must be empty). The PDQ index is kept up to date as entries come and go,
so the times include it.

    python benchmarks/exchange_sync.py [--items 100000] [--changes 0.01] [--db URL]

Prints a table and writes ``benchmarks/results/exchange_sync.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from amber.engine import open_engine
from machine import describe
from threatexchange_server import OUR_APP, PRIVACY_GROUP, TOKEN, ThreatExchangeServer

OUT = Path(__file__).resolve().parent / "results" / "exchange_sync.json"


def timed(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """``step()``, its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def hashes(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.getrandbits(256):064x}" for _ in range(count)]


def threatexchange_run(engine: Any, rng: random.Random, items: int, changes: int) -> dict[str, Any]:
    with ThreatExchangeServer(page_size=100) as server:
        values = hashes(rng, items)
        server.put_many((v, "HASH_PDQ") for v in values)
        engine.exchanges.create(
            "TE_BENCH",
            api="fb_threatexchange",
            config={"privacy_group": PRIVACY_GROUP},
            endpoint=server.endpoint,
            credentials={"api_token": TOKEN},
        )
        first, first_wall, first_cpu = timed(lambda: engine.exchanges.fetch("TE_BENCH"))
        added = hashes(rng, changes // 2)
        picked = rng.sample(values, changes - len(added))
        deleted = picked[: changes * 3 // 10]
        marked = picked[len(deleted) :]
        server.put_many((v, "HASH_PDQ") for v in added)
        server.delete_many((v, "HASH_PDQ") for v in deleted)
        for value in marked:
            server.set_opinion(value, OUR_APP, "NON_MALICIOUS")
        second, wall, cpu = timed(lambda: engine.exchanges.fetch("TE_BENCH"))
        status = engine.exchanges.status("TE_BENCH")
    assert status.entries == items + len(added) - len(deleted) - len(marked), status
    return {
        "source": "fb_threatexchange",
        "full": {"seconds": first_wall, "cpu": first_cpu, **first.counts.to_json()},
        "resync": {"seconds": wall, "cpu": cpu, **second.counts.to_json()},
        "entries": status.entries,
    }


def file_run(
    engine: Any, rng: random.Random, items: int, changes: int, folder: Path
) -> dict[str, Any]:
    path = folder / "hashes.txt"
    values = hashes(rng, items)
    path.write_text("".join(f"pdq {v}\n" for v in values))
    engine.exchanges.create("FILE_BENCH", api="local_file", config={"filename": str(path)})
    first, first_wall, first_cpu = timed(lambda: engine.exchanges.fetch("FILE_BENCH"))
    removed = set(rng.sample(values, changes // 2))
    kept = [v for v in values if v not in removed] + hashes(rng, changes - len(removed))
    path.write_text("".join(f"pdq {v}\n" for v in kept))
    second, wall, cpu = timed(lambda: engine.exchanges.fetch("FILE_BENCH"))
    status = engine.exchanges.status("FILE_BENCH")
    assert status.entries == len(kept), status
    return {
        "source": "local_file",
        "full": {"seconds": first_wall, "cpu": first_cpu, **first.counts.to_json()},
        "resync": {"seconds": wall, "cpu": cpu, **second.counts.to_json()},
        "entries": status.entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changes", type=float, default=0.01, help="share of items changed")
    parser.add_argument("--db", help="a database URL (default: a new SQLite file)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    changes = round(args.items * args.changes)
    rng = random.Random(args.seed)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = args.db or str(folder / "bench.db")
        with open_engine(db=db, vault=folder / "vault", index_dir=folder / "index") as engine:
            runs.append(threatexchange_run(engine, rng, args.items, changes))
            runs.append(file_run(engine, rng, args.items, changes, folder))
    print(f"{args.items:,} records, {changes:,} changed ({args.changes:.1%})")
    print(
        "| source | full fetch s (CPU s) | re-sync s (CPU s) "
        "| re-sync fetched, added, removed, held |"
    )
    print("|---|---:|---:|---|")
    for run in runs:
        full, resync = run["full"], run["resync"]
        print(
            f"| {run['source']} | {full['seconds']:.1f} ({full['cpu']:.1f}) | "
            f"{resync['seconds']:.2f} ({resync['cpu']:.2f}) | {resync['fetched']:,}, "
            f"{resync['added']:,}, {resync['removed']:,}, {resync['held']:,} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": describe(),
        "items": args.items,
        "changes": changes,
        "database": "sqlite" if args.db is None else "given",
        "runs": runs,
    }
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
