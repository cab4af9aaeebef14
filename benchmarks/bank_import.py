"""Importing a hash list into a bank: amber now, amber before, and pytx's parts of HMA's
ingestion, side by side on the same files.

Generates N random PDQ hashes as a CSV (``signal_type,signal`` rows, fixed seed) and times,
each as a whole ``amber`` process (start-up, reading, storing, the PDQ index built):

- ``amber bank import BANK list.csv`` of this tree, on SQLite and on PostgreSQL;
- the same command of amber before the bulk import (commit ``215d7e2``, or
  ``--old-commit``), from a venv over a git worktree of it (``--old-rows``; it takes
  minutes at 1,000,000);
- the incremental re-sync: the list with 1 % of its hashes removed and as many new ones,
  ``amber bank import BANK changed.csv --sync`` (adds the new, deletes the gone);
- python-threatexchange's parts of HMA's ingestion (HMA itself does not install here):
  its local file exchange reading ``pdq <hash>`` lines (``fetch_iter`` and
  ``naive_convert_to_signal_type``, as HMA's fetcher calls them) and its PDQ index build
  (``PdqSignal.get_index_cls().build``, as HMA's index builder does).

PostgreSQL is the server at ``--postgres`` (trust auth); each run creates a database of
its own and drops it. Prints a Markdown table and writes the figures, with the machine, to
``benchmarks/results/bank_import.json``::

    python benchmarks/bank_import.py --rows 1000000 --old-rows 1000000
    python benchmarks/bank_import.py --rows 10000000 --old-rows 0 --no-pytx --out bank_import_10m
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from machine import ROOT, describe

OLD_COMMIT = "215d7e2"
SEED = 20261207


def write_list(path: Path, hashes: list[str]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("signal_type,signal\n")
        out.writelines(f"pdq,{h}\n" for h in hashes)


def random_hashes(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.getrandbits(256):064x}" for _ in range(count)]


def run(python: Path, db: str, *args: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``python -m amber ARGS --db DB``; its wall time and stderr."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "amber", *args, "--db", db],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


@contextlib.contextmanager
def database(backend: str, folder: Path, server: str) -> Iterator[str]:
    """A new, empty database: a SQLite file, or a PostgreSQL database dropped after."""
    if backend == "sqlite":
        path = folder / f"amber-{secrets.token_hex(4)}.db"
        yield str(path)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
        return
    name = f"bench_{secrets.token_hex(6)}"
    _psql(server, f"CREATE DATABASE {name}")
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        _psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _psql(server: str, statement: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(
        server.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


@contextlib.contextmanager
def old_amber(folder: Path, commit: str) -> Iterator[Path]:
    """A Python whose ``amber`` is ``commit`` (a worktree, a venv over this machine's
    packages); the global install is left alone."""
    tree = folder / "old-tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        venv = folder / "old-venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True
        )
        python = venv / "bin" / "python"
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(tree)],
            check=True,
            capture_output=True,
        )
        yield python
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


def amber_runs(
    python: Path,
    backend: str,
    folder: Path,
    server: str,
    original: Path,
    changed: Path | None,
    env: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with database(backend, folder, server) as db:
        run(python, db, "bank", "create", "big", env=env)
        out["import_s"], out["import_said"] = run(
            python, db, "bank", "import", "big", str(original), env=env
        )
        if changed is not None:
            out["resync_s"], out["resync_said"] = run(
                python, db, "bank", "import", "big", str(changed), "--sync", env=env
            )
            out["again_s"], out["again_said"] = run(
                python, db, "bank", "import", "big", str(changed), env=env
            )
    return out


def pytx_run(hashes: list[str], folder: Path) -> dict[str, Any]:
    """python-threatexchange's local file exchange and PDQ index build on the list."""
    from threatexchange.exchanges.impl.file_api import (
        FileCollaborationConfig,
        LocalFileSignalExchangeAPI,
    )
    from threatexchange.signal_type.pdq.signal import PdqSignal

    lines = folder / "list.txt"
    lines.write_text("".join(f"pdq {h}\n" for h in hashes), encoding="utf-8")
    start = time.perf_counter()
    collab = FileCollaborationConfig(
        name="list", api="local_file", enabled=True, filename=str(lines)
    )
    api = LocalFileSignalExchangeAPI.for_collab(collab)
    fetched: dict[Any, Any] = {}
    for delta in api.fetch_iter([PdqSignal], None):
        api.naive_fetch_merge(fetched, delta.updates)
    signals = api.naive_convert_to_signal_type([PdqSignal], collab, fetched)
    read = time.perf_counter() - start
    start = time.perf_counter()
    index = PdqSignal.get_index_cls().build(signals[PdqSignal].items())
    build = time.perf_counter() - start
    return {"read_s": read, "index_build_s": build, "signals": len(index)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--old-rows", type=int, default=1_000_000, help="0: skip the old path")
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="the amber to compare with")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--change", type=float, default=0.01, help="share changed for re-sync")
    parser.add_argument("--no-pytx", action="store_true")
    parser.add_argument("--out", default="bank_import")
    args = parser.parse_args(argv)

    rng = random.Random(SEED)
    results: dict[str, Any] = {
        "machine": describe(),
        "rows": args.rows,
        "old_rows": args.old_rows,
        "old_commit": args.old_commit,
        "change": args.change,
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="amber-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        env = dict(os.environ, XDG_CACHE_HOME=str(folder / "cache"), AMBER_DB_TIMEOUT="600")
        hashes = random_hashes(rng, args.rows)
        original, changed = folder / "list.csv", folder / "changed.csv"
        write_list(original, hashes)
        step = max(1, round(1 / args.change))
        kept = [h for i, h in enumerate(hashes) if i % step]
        write_list(changed, kept + random_hashes(rng, len(hashes) - len(kept)))
        for backend in args.backends.split(","):
            print(f"amber (this tree), {backend}, {args.rows:,} rows ...", file=sys.stderr)
            results["runs"][f"new/{backend}"] = amber_runs(
                Path(sys.executable), backend, folder, args.postgres, original, changed, env
            )
            print(json.dumps(results["runs"][f"new/{backend}"]), file=sys.stderr)
        if args.old_rows:
            old_list = folder / "old.csv"
            write_list(old_list, hashes[: args.old_rows])
            with old_amber(folder, args.old_commit) as python:
                for backend in args.backends.split(","):
                    print(
                        f"amber {args.old_commit}, {backend}, {args.old_rows:,} rows ...",
                        file=sys.stderr,
                    )
                    results["runs"][f"old/{backend}"] = amber_runs(
                        python, backend, folder, args.postgres, old_list, None, env
                    )
                    print(json.dumps(results["runs"][f"old/{backend}"]), file=sys.stderr)
        if not args.no_pytx:
            print("python-threatexchange ...", file=sys.stderr)
            results["runs"]["pytx"] = pytx_run(hashes, folder)
        shutil.rmtree(folder / "cache", ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / f"{args.out}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    rows = [
        "| run | rows | import (s) | rows/s | re-sync 1 % (s) | same file again (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, run_ in results["runs"].items():
        if name == "pytx":
            continue
        count = results["old_rows"] if name.startswith("old/") else results["rows"]
        resync = f"{run_['resync_s']:.1f}" if "resync_s" in run_ else "-"
        again = f"{run_['again_s']:.1f}" if "again_s" in run_ else "-"
        rows.append(
            f"| {name} | {count:,} | {run_['import_s']:.1f} | {count / run_['import_s']:,.0f} "
            f"| {resync} | {again} |"
        )
    if "pytx" in results["runs"]:
        p = results["runs"]["pytx"]
        rows.append(
            f"| pytx file exchange + PDQ index build | {p['signals']:,} | "
            f"{p['read_s'] + p['index_build_s']:.1f} (read {p['read_s']:.1f}, build "
            f"{p['index_build_s']:.1f}) | | | |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
