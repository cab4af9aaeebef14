"""How fast the evidence vault takes records, from one process and from several at once.

Every amber process on a machine (``amber serve --workers N``, ``amber scan`` runs) appends
to one vault under its writer lock, so the vault is the one place where their work is
serialised. This script preserves generated posts (one ~60 KB JPEG each) into a fresh vault:

* from 1 process, then from ``--processes`` processes at once (the same number of posts in
  all), side by side, as posts/s and a ratio;
* at several log sizes (``--sizes``), since each append re-reads the log.

Then it runs the offline verification (``amber evidence verify``'s library call) on the
result and reports that every record is there and the log checks out.

Run from the repository root:

    python benchmarks/vault_append.py [--posts 200] [--processes 2] [--sizes 0,2000]

Prints a Markdown table and writes ``benchmarks/results/vault_append.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amber.evidence.vault import Vault
from amber.evidence.verify import verify_vault
from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "vault_append.json"


def _media(folder: Path, count: int) -> list[Path]:
    paths = []
    for seed in range(count):
        buffer = io.BytesIO()
        photo(seed, 480, 360).save(buffer, "JPEG", quality=85)
        path = folder / f"{seed}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def _preserve(vault_path: str, media: list[str], prefix: str) -> int:
    """Preserve one post per media file; returns how many were written."""
    import hashlib

    vault = Vault.open(Path(vault_path))
    written = 0
    for n, file in enumerate(media):
        digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        post_id = f"{prefix}-{n}"
        item = vault.preserve(
            post_id=post_id,
            post=json.dumps({"id": post_id, "media": [{"path": file}]}),
            decision={"post_id": post_id, "verdict": "remove", "reasons": [], "actions": []},
            media=[(0, file, Path(file), digest)],
            source="benchmark",
            policy="benchmark",
        )
        written += item is not None
    return written


def _timed(vault: Path, media: list[Path], processes: int, prefix: str) -> dict[str, Any]:
    """Preserve one post per file, split over ``processes`` processes at once."""
    shares = [[str(p) for p in media[i::processes]] for i in range(processes)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        written = sum(
            pool.map(
                _preserve,
                [str(vault)] * processes,
                shares,
                [f"{prefix}-p{i}" for i in range(processes)],
            )
        )
    seconds = time.perf_counter() - started
    return {"processes": processes, "posts": written, "seconds": round(seconds, 3),
            "posts_per_s": round(written / seconds, 1)}  # fmt: skip


def _machine() -> dict[str, Any]:
    return describe()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200, help="posts per timed run")
    parser.add_argument("--processes", type=int, default=2, help="processes appending at once")
    parser.add_argument(
        "--sizes", default="0,2000", help="log sizes (records) to measure at, ascending"
    )
    parser.add_argument(
        "--output", "--out", dest="out", type=Path, default=OUT, help="where to write the JSON"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.posts < 1 or args.processes < 2 or sizes[0] < 0:
        parser.error("--posts must be >= 1, --processes >= 2, --sizes >= 0")

    rows = []
    with tempfile.TemporaryDirectory(prefix="amber-vault-") as folder:
        root = Path(folder)
        (root / "media").mkdir()
        print("generating images ...", file=sys.stderr)
        media = _media(root / "media", args.posts)
        vault = root / "vault"
        Vault.open(vault)
        filled = 0
        for size in sizes:
            if size > filled:  # grow the log with distinct posts of the same files
                print(f"filling the log to {size} records ...", file=sys.stderr)
                extra = (media * (1 + (size - filled) // len(media)))[: size - filled]
                _preserve(str(vault), [str(p) for p in extra], f"fill{size}")
                filled = size
            one = _timed(vault, media, 1, f"one{size}")
            many = _timed(vault, media, args.processes, f"many{size}")
            filled += one["posts"] + many["posts"]
            rows.append({"log_records_before": size, "one": one, "many": many})
        report = verify_vault(vault)
        records = len(Vault.open(vault).log)

    lines = [
        f"| log size | 1 process posts/s | {args.processes} processes posts/s | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row["many"]["posts_per_s"] / row["one"]["posts_per_s"]
        lines.append(
            f"| {row['log_records_before']:,} | {row['one']['posts_per_s']} | "
            f"{row['many']['posts_per_s']} | {ratio:.2f}x |"
        )
    print("\n".join(lines))
    problems = list(report.problems)
    print(f"\nverify: {records} records, {'ok' if not problems else problems[:3]}")
    result = {
        "command": " ".join(["python", "benchmarks/vault_append.py", *(argv or sys.argv[1:])]),
        "rows": rows,
        "records": records,
        "verify_problems": problems,
        "machine": _machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
