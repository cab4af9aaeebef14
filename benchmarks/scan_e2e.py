"""End to end: posts/s of a real ``amber scan`` next to a minimal HMA-like pipeline.

Builds a throw-away state in a temporary folder:

- a bank of ``--bank`` generated photos (``amber.synthetic.photo``, ``--size``, JPEG
  quality 90), made with the real commands ``amber bank create`` and ``amber bank add``
  (each photo one entry, with its robust views), then ``amber bank export``ed to the CSV
  that python-threatexchange and HMA read;
- ``--posts`` posts in a JSONL file, each with one JPEG and a short benign caption: a
  share ``--hits`` are copies of banked photos as re-uploaders post them, made from the
  banked JPEG (re-encoded at quality 70, resized to half, mirrored, a meme caption bar on
  top, a central 90% crop: one kind after another), the rest fresh photos of ``--size``
  that no bank holds.

Then, in rounds, each of these runs once on the same files, in an order that rotates from
round to round, each with a fresh copy of the bank database and an empty vault:

- ``amber scan``: ``python -m amber scan POSTS --format jsonl`` as a subprocess, SQLite
  default, the default worker count (a process pool, one process per usable core);
- ``amber scan --workers 1``: the same with hashing in the scanning process;
- ``baseline``: this script in a subprocess doing what a minimal HMA-like pipeline does, in
  one process: read each JSON line, decode the image at full resolution, one
  ``pdqhash.compute``, a range search within distance 31 in a faiss ``IndexBinaryFlat``
  of the exported bank hashes (one per banked photo; faiss on one thread, which is faster
  for one query at a time), one INSERT per post into SQLite (WAL, committed every 64
  posts, as amber batches its decisions).

Every time is the wall time of the whole subprocess, process start and imports included;
the start-up alone (the same command on an empty JSONL) is shown beside it. amber's time
also pays for what the baseline skips: sha256 and md5, robust query views in 8 rotations
and mirrors, the harm-poll text check, the policy, the stored decision with its reasons,
and preserving every removed post in the evidence vault (media copy, custody log, signed
checkpoint). The verdict table says what that buys: which copies each side catches.

Run from the repository root (needs ``pip install -e '.[bench]'`` for faiss):

    python benchmarks/scan_e2e.py [--bank 1000] [--posts 1000] [--hits 0.3] [--rounds 2]
        [--size 640x480] [--workdir DIR]

Prints Markdown tables and writes ``benchmarks/results/scan_e2e.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image, ImageDraw, ImageFont, ImageOps

from amber.hashing import worker_count
from amber.synthetic import photo
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "scan_e2e.json"
BANK = "known"
#: First seeds of banked and of fresh photos: far apart, and far from other benchmarks'.
BANK_SEED, FRESH_SEED = 300_000, 600_000
#: The kinds of copy of a banked photo, used one after another.
HIT_KINDS = ("reencoded", "resized", "mirrored", "captioned", "cropped")
CAPTION_WORDS = ("WHEN", "THE", "MONDAY", "HITS", "ME", "NOBODY", "EXPECTS", "THIS", "CAT", "MOOD")
TEXTS = (
    "Sunset over the harbour tonight.",
    "Our garden finally has tomatoes!",
    "Trail run this morning, 12 km in the fog.",
    "New cafe on the corner does great coffee.",
    "Throwback to last summer's road trip.",
    "The kids built a snowman taller than the door.",
)
#: The baseline matches as amber's default bank threshold does: distance <= 31.
THRESHOLD = 31
COMMIT_EVERY = 64
CONFIGS = ("amber scan", "amber scan --workers 1", "baseline")


# -- images ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """One post to write: its id, what its image is, and where it goes."""

    id: str
    kind: str  # one of HIT_KINDS, or "fresh"
    seed: int
    bank_file: str | None  # the banked photo it copies (hits only)
    media: str  # path relative to the JSONL file


def _save_bank_photo(job: tuple[int, str, tuple[int, int]]) -> None:
    seed, path, size = job
    photo(seed, *size).save(path, "JPEG", quality=90)


def _caption_bar(image: Image.Image, rng: random.Random) -> Image.Image:
    """A white meme caption bar, 15% of the height, with black capitals, above the photo."""
    width, height = image.size
    bar = round(height * 0.15)
    canvas = Image.new("RGB", (width, height + bar), (255, 255, 255))
    canvas.paste(image, (0, bar))
    draw = ImageDraw.Draw(canvas)
    text = " ".join(rng.choice(CAPTION_WORDS) for _ in range(4))
    font = ImageFont.load_default(size=max(8, round(bar * 0.5)))
    draw.text((width / 2, bar / 2), text, fill=(0, 0, 0), font=font, anchor="mm")
    return canvas


def _copy(image: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, int]:
    """A re-uploaded copy of a banked photo, and the JPEG quality to save it at."""
    if kind == "reencoded":
        return image, 70
    if kind == "resized":
        return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS), 85
    if kind == "mirrored":
        return ImageOps.mirror(image), 85
    if kind == "captioned":
        return _caption_bar(image, rng), 85
    if kind == "cropped":
        dx, dy = round(image.width * 0.05), round(image.height * 0.05)
        return image.crop((dx, dy, image.width - dx, image.height - dy)), 85
    raise ValueError(f"unknown kind of copy {kind!r}")


def _save_post_image(job: tuple[Planned, str, str, tuple[int, int]]) -> None:
    planned, folder, bank_folder, size = job
    if planned.kind == "fresh" or planned.bank_file is None:
        image, quality = photo(planned.seed, *size), 85
    else:  # a re-uploader starts from the banked JPEG as it was posted
        with Image.open(Path(bank_folder) / planned.bank_file) as banked:
            base = banked.convert("RGB")
        image, quality = _copy(base, planned.kind, random.Random(planned.seed))
    image.save(Path(folder) / planned.media, "JPEG", quality=quality)


def plan(*, posts: int, bank: int, hits: float, seed: int) -> list[Planned]:
    """Which posts copy which banked photo, and which are fresh; the same for a seed."""
    rng = random.Random(seed)
    planned = []
    hit_count = 0
    for index in range(posts):
        post_id = f"p{index:06d}"
        media = f"media/{post_id}.jpg"
        if rng.random() < hits:
            kind = HIT_KINDS[hit_count % len(HIT_KINDS)]
            hit_count += 1
            banked = rng.randrange(bank)
            planned.append(Planned(post_id, kind, BANK_SEED + banked, _bank_name(banked), media))
        else:
            planned.append(Planned(post_id, "fresh", FRESH_SEED + index, None, media))
    return planned


def _bank_name(index: int) -> str:
    return f"b{index:06d}.jpg"


def write_posts(
    planned: list[Planned], folder: Path, bank_folder: Path, *, size: tuple[int, int], seed: int
) -> Path:
    """The images (in a process pool) and the JSONL file; returns its path."""
    (folder / "media").mkdir(parents=True)
    with ProcessPoolExecutor(max_workers=worker_count()) as pool:
        jobs = [(p, str(folder), str(bank_folder), size) for p in planned]
        list(pool.map(_save_post_image, jobs, chunksize=8))
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    path = folder / "posts.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for index, p in enumerate(planned):
            post = {
                "id": p.id,
                "author": f"user{rng.randrange(200)}",
                "created_at": (start + timedelta(seconds=index)).isoformat().replace("+00:00", "Z"),
                "text": rng.choice(TEXTS),
                "media": [{"path": p.media}],
            }
            out.write(json.dumps(post) + "\n")
    return path


# -- state -------------------------------------------------------------------------------


def _amber(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m amber ARGS``; raises with its stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "amber", *args], cwd=cwd, capture_output=True, text=True, env=_env()
    )
    if done.returncode != 0:
        command = " ".join(args)
        raise RuntimeError(f"amber {command} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def _env() -> dict[str, str]:
    """This environment without amber's own variables: every path is given as a flag."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AMBER_")}


def build_bank(root: Path, *, count: int, size: tuple[int, int]) -> dict[str, Any]:
    """Bank photos written, banked with the CLI and exported; returns timings and paths."""
    photos = root / "bank"
    photos.mkdir()
    jobs = [(BANK_SEED + i, str(photos / _bank_name(i)), size) for i in range(count)]
    with ProcessPoolExecutor(max_workers=worker_count()) as pool:
        list(pool.map(_save_bank_photo, jobs, chunksize=8))
    state = root / "state"
    state.mkdir()
    db, vault = str(state / "amber.db"), str(state / "vault")
    _amber("bank", "create", BANK, "--label", "known-photo", "--db", db, "--vault", vault, cwd=root)
    start = time.perf_counter()
    _amber("bank", "add", BANK, str(photos), "--db", db, "--vault", vault, cwd=root)
    add_seconds = time.perf_counter() - start
    export = root / "bank.csv"
    _amber("bank", "export", BANK, str(export), "--db", db, "--vault", vault, cwd=root)
    with sqlite3.connect(f"file:{state / 'amber.db'}?mode=ro", uri=True) as conn:
        sources = {
            entry: Path(source).name
            for entry, source in conn.execute("SELECT id, source FROM bank_entries")
        }
        original = dict(
            conn.execute(
                "SELECT s.value, e.source FROM entry_signals s JOIN bank_entries e "
                "ON e.id = s.entry_id WHERE s.signal_type = 'pdq' AND s.variant = 'original'"
            )
        )
        stored = conn.execute(
            "SELECT COUNT(*) FROM entry_signals WHERE signal_type = 'pdq'"
        ).fetchone()[0]
    exported = [row[1] for row in csv.reader(export.open()) if row and row[0] == "pdq"]
    if len(sources) != count or sorted(exported) != sorted(original):
        raise RuntimeError(f"bank holds {len(sources)} entries, {len(exported)} exported hashes")
    return {
        "photos": photos,
        "db": state / "amber.db",
        "csv": export,
        "entry_sources": sources,
        "hash_sources": {h: Path(s).name for h, s in original.items()},
        "add_seconds": add_seconds,
        "pdq_hashes_stored": stored,
    }


def fresh_state(bank_db: Path, run: Path) -> Path:
    """A copy of the bank database (and its PDQ index) in ``run``; returns the db path."""
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    for item in bank_db.parent.iterdir():
        if item.name.startswith(bank_db.name):
            if item.is_dir():
                shutil.copytree(item, run / item.name)
            else:
                shutil.copy2(item, run / item.name)
    return run / bank_db.name


# -- the baseline ------------------------------------------------------------------------


def run_baseline(posts: Path, bank_csv: Path, db: Path) -> int:
    """A minimal HMA-like scan in this process; one JSON line per post on stdout."""
    import faiss

    # One thread, as the rest of the baseline: for one query against a bank this size,
    # OpenMP's threads cost more than they save (16 ms a search on a busy 2-core machine).
    faiss.omp_set_num_threads(1)
    hashes = [row[1] for row in csv.reader(bank_csv.open()) if row and row[0] == "pdq"]
    index = faiss.IndexBinaryFlat(256)
    if hashes:
        index.add(np.frombuffer(bytes.fromhex("".join(hashes)), np.uint8).reshape(-1, 32))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS decisions (post_id TEXT PRIMARY KEY, verdict TEXT NOT NULL, "
        "matches TEXT NOT NULL, post TEXT NOT NULL, decided_at TEXT NOT NULL)"
    )
    folder = posts.parent
    pending = 0
    with posts.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            post = json.loads(line)
            matches: list[dict[str, Any]] = []
            for media in post.get("media") or []:
                with Image.open(folder / media["path"]) as image:
                    pixels = np.asarray(image.convert("RGB"))
                bits, quality = pdqhash.compute(pixels)
                query = np.packbits(np.asarray(bits, dtype=np.uint8)).reshape(1, 32)
                _, distances, ids = index.range_search(query, THRESHOLD + 1)  # radius is strict
                matches += [
                    {"hash": hashes[int(i)], "distance": int(d), "quality": int(quality)}
                    for d, i in zip(distances, ids, strict=True)
                ]
            verdict = "remove" if matches else "allow"
            conn.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?)",
                (
                    post["id"],
                    verdict,
                    json.dumps(matches),
                    line.strip(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            pending += 1
            if pending >= COMMIT_EVERY:
                conn.commit()
                pending = 0
            print(json.dumps({"post_id": post["id"], "verdict": verdict, "matches": matches}))
    conn.commit()
    conn.close()
    return 0


# -- runs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """One timed subprocess."""

    config: str
    round: int
    posts: int
    seconds: float
    startup_seconds: float
    stdout: str


def _command(config: str, posts: Path, db: Path, run: Path, bank_csv: Path) -> list[str]:
    if config == "baseline":
        script = str(Path(__file__).resolve())
        return [sys.executable, script, "--baseline", str(posts), str(bank_csv), str(db)]
    command = [sys.executable, "-m", "amber", "scan", str(posts), "--format", "jsonl"]
    command += ["--db", str(db), "--vault", str(run / "vault")]
    if config.endswith("--workers 1"):
        command += ["--workers", "1"]
    return command


def timed(config: str, posts: Path, bank: dict[str, Any], run: Path) -> tuple[float, str]:
    """Wall seconds of one run of ``config`` on ``posts`` with fresh state, and its stdout."""
    db = fresh_state(bank["db"], run) if config != "baseline" else _empty(run) / "baseline.db"
    command = _command(config, posts, db, run, bank["csv"])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=run, capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{config} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout


def _empty(run: Path) -> Path:
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    return run


def measure(
    posts: Path, empty: Path, bank: dict[str, Any], root: Path, *, count: int, rounds: int
) -> list[Run]:
    """Every config ``rounds`` times, the order rotating; each run after its start-up run."""
    runs = []
    for round_ in range(rounds):
        order = CONFIGS[round_ % len(CONFIGS) :] + CONFIGS[: round_ % len(CONFIGS)]
        for config in order:
            startup, _ = timed(config, empty, bank, root / "run")
            seconds, stdout = timed(config, posts, bank, root / "run")
            runs.append(Run(config, round_, count, seconds, startup, stdout))
            print(
                f"round {round_ + 1}/{rounds}: {config}: {seconds:.1f} s "
                f"(start-up {startup:.1f} s)",
                file=sys.stderr,
            )
    return runs


# -- checking and reporting ---------------------------------------------------------------


def check(run: Run, planned: list[Planned], bank: dict[str, Any]) -> dict[str, Any]:
    """Per kind of post: how many were caught (matched the right banked photo) or not.

    A fresh post that matches anything, or a copy that matches another photo, is a false
    match. amber's verdicts are also counted.
    """
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    by_id = {line["post_id"]: line for line in lines}
    if len(by_id) != len(planned):
        raise RuntimeError(f"{run.config} decided {len(by_id)} of {len(planned)} posts")
    kinds: dict[str, Counter[str]] = {}
    for p in planned:
        out = by_id[p.id]
        if run.config == "baseline":
            matched = {bank["hash_sources"][m["hash"]] for m in out["matches"]}
        else:
            matched = {
                bank["entry_sources"][r["entry"]]
                for r in out["reasons"]
                if r.get("bank") == BANK and "entry" in r
            }
        counts = kinds.setdefault(p.kind, Counter())
        counts["posts"] += 1
        counts[f"verdict {out['verdict']}"] += 1
        if p.bank_file is not None and p.bank_file in matched:
            counts["caught"] += 1
        if matched - {p.bank_file}:
            counts["false matches"] += 1
    return {kind: dict(sorted(c.items())) for kind, c in kinds.items()}


def summarise(runs: list[Run], planned: list[Planned], bank: dict[str, Any]) -> dict[str, Any]:
    """Best run per config, posts/s, ratios to the baseline, and the verdict check."""
    configs: dict[str, Any] = {}
    for config in CONFIGS:
        mine = [r for r in runs if r.config == config]
        best = min(mine, key=lambda r: r.seconds)
        configs[config] = {
            "seconds": round(best.seconds, 2),
            "posts_per_s": round(best.posts / best.seconds, 1),
            "startup_seconds": round(min(r.startup_seconds for r in mine), 2),
            "posts_per_s_after_startup": round(
                best.posts / max(1e-9, best.seconds - min(r.startup_seconds for r in mine)), 1
            ),
            "all_seconds": [round(r.seconds, 2) for r in mine],
            "check": check(best, planned, bank),
        }
    base = configs["baseline"]
    for entry in configs.values():
        entry["ratio_to_baseline"] = round(entry["posts_per_s"] / base["posts_per_s"], 2)
        entry["ratio_after_startup"] = round(
            entry["posts_per_s_after_startup"] / base["posts_per_s_after_startup"], 2
        )
    return configs


def render(configs: dict[str, Any], planned: list[Planned]) -> str:
    """The speed table and the catch table."""
    lines = [
        "| run | seconds | posts/s | ratio | start-up s | posts/s after start-up | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in configs.items():
        lines.append(
            f"| {name} | {c['seconds']:.1f} | {c['posts_per_s']:.1f} | "
            f"{c['ratio_to_baseline']:.2f}x | {c['startup_seconds']:.1f} | "
            f"{c['posts_per_s_after_startup']:.1f} | {c['ratio_after_startup']:.2f}x |"
        )
    kinds = list(dict.fromkeys(p.kind for p in planned))
    lines += [
        "",
        "| posts | n | amber caught | amber verdicts | baseline caught | false matches "
        "amber / baseline |",
        "|---|---:|---:|---|---:|---:|",
    ]
    amber, base = configs["amber scan"]["check"], configs["baseline"]["check"]
    for kind in sorted(kinds, key=lambda k: (k == "fresh", k)):
        a, b = amber.get(kind, {}), base.get(kind, {})
        verdicts = ", ".join(
            f"{v.removeprefix('verdict ')} {n}" for v, n in a.items() if v.startswith("verdict ")
        )
        caught = "-" if kind == "fresh" else str(a.get("caught", 0))
        caught_base = "-" if kind == "fresh" else str(b.get("caught", 0))
        lines.append(
            f"| {kind} | {a.get('posts', 0)} | {caught} | {verdicts} | {caught_base} | "
            f"{a.get('false matches', 0)} / {b.get('false matches', 0)} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where and on what the numbers were measured."""
    import faiss

    return describe(faiss=faiss.__version__, sqlite=sqlite3.sqlite_version)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small; use at least 64x64")
    return width, height


def main(argv: list[str] | None = None) -> int:
    """Build the state, time the runs, check the verdicts, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=1000, help="banked photos")
    parser.add_argument("--posts", type=int, default=1000, help="posts to scan")
    parser.add_argument("--hits", type=float, default=0.3, help="share of posts that copy one")
    parser.add_argument(
        "--size", type=_size, default=(640, 480), help="photos' size (default 640x480)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each config (best kept)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the mix of posts")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--workdir", type=Path, help="build and keep the state here (default: a temporary folder)"
    )
    parser.add_argument("--baseline", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return run_baseline(*args.baseline)
    if args.bank < 1 or args.posts < 1 or args.rounds < 1 or not 0 <= args.hits <= 1:
        parser.error("--bank, --posts and --rounds must be positive, --hits within 0..1")

    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty")

    info = machine()
    with tempfile.TemporaryDirectory(prefix="amber-scan-e2e-") as folder:
        root = Path(folder) if args.workdir is None else args.workdir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        print(f"banking {args.bank} photos …", file=sys.stderr)
        started = time.perf_counter()
        bank = build_bank(root, count=args.bank, size=args.size)
        print(f"writing {args.posts} posts …", file=sys.stderr)
        planned = plan(posts=args.posts, bank=args.bank, hits=args.hits, seed=args.seed)
        posts = write_posts(planned, root / "posts", bank["photos"], size=args.size, seed=args.seed)
        empty = root / "posts" / "empty.jsonl"
        empty.write_text("")
        setup_seconds = time.perf_counter() - started
        runs = measure(posts, empty, bank, root, count=len(planned), rounds=args.rounds)
    configs = summarise(runs, planned, bank)

    print(
        f"{args.posts} posts ({sum(p.kind != 'fresh' for p in planned)} copies of banked "
        f"photos), one JPEG each ({args.size[0]}x{args.size[1]}, copies resized, cropped or "
        f"captioned from that); "
        f"bank of {args.bank} photos ({bank['pdq_hashes_stored']} PDQ hashes with amber's "
        f"views, {args.bank} in the baseline); {info['cores']} cores ({info['cpu']}), "
        f"Python {info['python']}; best of {args.rounds} round(s)"
    )
    print(render(configs, planned))
    result = {
        "command": " ".join(["python benchmarks/scan_e2e.py", *(argv or sys.argv[1:])]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "parameters": {
            "bank_photos": args.bank,
            "bank_pdq_hashes_amber": bank["pdq_hashes_stored"],
            "bank_pdq_hashes_baseline": args.bank,
            "posts": args.posts,
            "copies": sum(p.kind != "fresh" for p in planned),
            "hits": args.hits,
            "size": list(args.size),
            "rounds": args.rounds,
            "seed": args.seed,
            "amber_workers_default": worker_count(),
            "threshold": THRESHOLD,
            "timing": "wall time of the subprocess, process start included; best round",
        },
        "setup_seconds": round(setup_seconds, 1),
        "bank_add_seconds": round(bank["add_seconds"], 1),
        "configs": configs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
