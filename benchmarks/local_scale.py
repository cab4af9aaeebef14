"""The local-feature stage (ORB) against a bank of 100,000 photos: cost, recall, memory
(issue 17, point 3: at most 30 ms a query image on one core, and the bank's memory).

**Real keypoints** (``real_pool``, cached in the work folder): ``OrbSignal.compute`` with
``Role.bank`` on ``--real`` generated photos (``amber.synthetic.photo``, seeds from 0, of
several sizes and shapes) and on the PDQ reference photos in
``/work/shared/conformance/pdq`` when present. 500 keypoints each, as banked.

**Grown photos** (``grow``): the rest of the bank, each a real photo's keypoints with every
descriptor moved by a number of bit flips drawn from the measured distances of real
descriptors to their nearest descriptor *in another real photo* (``nearest_other``), and
its places shuffled and jittered: as many descriptors per photo, the same distribution of
descriptors (ORB's biased bits, its per-photo clusters), each as far from its source as
other photos' descriptors lie, and no geometry any query agrees with.

**Queries** (``query_set``, ``Role.query``: two views of 500 keypoints): edited copies of
banked real photos (corner crops of 80, 70, 60 and 50%, one tile of a 2x2 collage, the
photo filmed at an angle) and never-banked photos as they are, cropped, and in a collage
of four of them (false matches).

For each bank size (``--sizes``, in photos) and each index setting, in a child process:
the rows are added through ``BinaryIndex.add`` (build time, resident memory before and
after, the index's own arrays), then every query image is matched as the matcher does
(``match_one``, the steps of ``Matcher._search``, ``_vote_first`` and ``_judge_geometry``
without the database): ``search`` on all its keypoint values within ``OrbSignal``'s
threshold, hits counted per banked photo before any row is read (the matcher's ``Tally``
and ``RowEntries``), the shortlist (the ``SHORTLIST`` photos with most votes, at least
``MIN_VOTES``), the rows of the shortlisted photos' hits, ``verify`` per shortlisted
photo and view. CPU time of the thread (``time.thread_time``) and wall time per query
image, p50 and p99, one faiss thread; recall (a copy matched its own photo) and false
matches (anything else matched).

Run from the repository root:

    python benchmarks/local_scale.py [--sizes 10000,100000] [--real 3000]
        [--nprobes 4,8,16] [--exact 60] [--work DIR] [--quick] [--freeze]

Writes ``benchmarks/results/local_scale.json`` (``local_scale-quick.json`` with
``--quick``: 2,000 photos, 300 real; ``-freeze`` before ``.json`` with ``--freeze``).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from amber.matching import SHORTLIST, RowEntries, Tally
from amber.signals.local import OrbSignal
from machine import describe, resident

orb_votes = OrbSignal().votes

Codes = npt.NDArray[np.uint8]
RESULTS = Path(__file__).parent / "results"
CONFORMANCE = Path("/work/shared/conformance/pdq")
#: Photo sizes the real photos are drawn at, in turn.
SIZES = ((800, 600), (640, 480), (600, 800), (1024, 768), (720, 720), (1200, 675))
#: Banked real photos whose edited copies are queries, and never-banked photos.
COPIED, UNKNOWN = 150, 100
#: Seeds of never-banked photos start here.
UNKNOWN_SEED = 1_000_000
#: Rows given to ``BinaryIndex.add`` at a time.
CHUNK = 500_000


# --------------------------------------------------------------------------- images


def _photo(seed: int) -> Any:
    from amber.synthetic import photo

    width, height = SIZES[seed % len(SIZES)]
    return photo(seed, width, height)


def corner(image: Any, share: float, where: str) -> Any:
    w, h = image.size
    cw, ch = int(w * share), int(h * share)
    x = 0 if "l" in where else w - cw
    y = 0 if "t" in where else h - ch
    return image.crop((x, y, x + cw, y + ch))


def collage(tiles: list[Any]) -> Any:
    from PIL import Image

    out = Image.new("RGB", (800, 600), "white")
    for n, tile in enumerate(tiles):
        out.paste(tile.resize((396, 296)), ((n % 2) * 402, (n // 2) * 302))
    return out


def copies(image: Any, others: list[Any]) -> dict[str, Any]:
    """The moved-in-the-frame copies of a banked photo the queries are made of."""
    from amber.synthetic import filmed_at_an_angle

    return {
        "corner-80": corner(image, 0.8, "tl"),
        "corner-70": corner(image, 0.7, "br"),
        "corner-60": corner(image, 0.6, "tr"),
        "corner-50": corner(image, 0.5, "bl"),
        "collage-tile": collage([others[0], image, *others[1:3]]),
        "perspective": filmed_at_an_angle(image),
    }


def _split(values: list[Any]) -> tuple[Codes, npt.NDArray[np.uint16], npt.NDArray[np.bool_]]:
    """Descriptors, places (ten-thousandths) and mirror flags of keypoint values."""
    from amber.signals.local import descriptors

    texts = [v.value for v in values]
    codes = descriptors(texts)
    places = np.array(
        [[int(p) for p in t[65:].split(",")] for t in texts], dtype=np.uint16
    ).reshape(-1, 2)
    mirror = np.array([v.variant == "mirror" for v in values], dtype=bool)
    return codes, places, mirror


def _bank_one(task: tuple[str, int | str]) -> tuple[Codes, npt.NDArray[np.uint16]]:
    from PIL import Image

    from amber.signals.base import Content, Role
    from amber.signals.local import OrbSignal

    kind, what = task
    image = _photo(int(what)) if kind == "photo" else Image.open(str(what)).convert("RGB")
    codes, places, _ = _split(OrbSignal().compute(Content(image=image), role=Role.bank))
    return codes, places


def _query_one(task: tuple[int, bool]) -> list[tuple[str, Codes, npt.NDArray[np.uint16], Any]]:
    """The query keypoints of one photo's copies (banked) or of the photo as it is,
    cropped, and in a collage of unknown photos (``unknown``)."""
    from amber.signals.base import Content, Role
    from amber.signals.local import OrbSignal

    seed, unknown = task
    image = _photo(seed)
    others = [_photo(UNKNOWN_SEED + 10_000 + (seed * 3 + n) % 500) for n in range(3)]
    if unknown:
        shown = {
            "unknown": image,
            "unknown-corner-60": corner(image, 0.6, "tl"),
            "unknown-collage": collage([image, *others]),
        }
    else:
        shown = copies(image, others)
    out = []
    for edit, picture in shown.items():
        codes, places, mirror = _split(OrbSignal().compute(Content(image=picture), role=Role.query))
        out.append((edit, codes, places, mirror))
    return out


def _pool_map(function: Any, tasks: list[Any], workers: int) -> list[Any]:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(function, tasks, chunksize=8))


def real_pool(work: Path, real: int, workers: int) -> dict[str, Any]:
    """The real photos' keypoints: ``codes`` (rows x 32), ``places``, ``starts`` (each
    photo's first row; one more at the end) and ``seeds`` (-1 for reference photos).
    Cached as ``real-<n>.npz``."""
    cache = work / f"real-{real}.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return {k: saved[k] for k in saved.files}
    started = time.perf_counter()
    tasks: list[tuple[str, int | str]] = [("photo", seed) for seed in range(real)]
    files = sorted(p for p in CONFORMANCE.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    tasks += [("file", str(p)) for p in files]
    done = _pool_map(_bank_one, tasks, workers)
    kept = [(t, d) for t, d in zip(tasks, done, strict=True) if len(d[0]) >= 100]
    counts = np.array([len(d[0]) for _, d in kept])
    pool = {
        "codes": np.concatenate([d[0] for _, d in kept]),
        "places": np.concatenate([d[1] for _, d in kept]),
        "starts": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "seeds": np.array([int(t[1]) if t[0] == "photo" else -1 for t, _ in kept]),
        "seconds": np.float64(time.perf_counter() - started),
    }
    np.savez(cache, **pool)  # type: ignore[arg-type]
    return pool


def query_set(work: Path, workers: int, copied: int, unknown: int) -> list[dict[str, Any]]:
    """Query images: ``edit``, ``seed`` (the banked photo, or -1), ``codes``, ``places``,
    ``mirror``. Cached as ``queries-<copied>-<unknown>.npz``."""
    cache = work / f"queries-{copied}-{unknown}.npz"
    if not cache.exists():
        tasks = [(seed, False) for seed in range(copied)]
        tasks += [(UNKNOWN_SEED + n, True) for n in range(unknown)]
        arrays: dict[str, Any] = {}
        done = _pool_map(_query_one, tasks, workers)
        key = 0
        for (seed, is_unknown), shown in zip(tasks, done, strict=True):
            for edit, codes, places, mirror in shown:
                arrays[f"{key}.codes"], arrays[f"{key}.places"] = codes, places
                arrays[f"{key}.mirror"] = mirror
                arrays[f"{key}.about"] = np.array([edit, str(-1 if is_unknown else seed)])
                key += 1
        np.savez(cache, **arrays)
    out = []
    with np.load(cache) as saved:
        for key in sorted({k.split(".")[0] for k in saved.files}, key=int):
            edit, seed = saved[f"{key}.about"].tolist()
            out.append(
                {
                    "edit": edit,
                    "seed": int(seed),
                    "codes": saved[f"{key}.codes"],
                    "places": saved[f"{key}.places"],
                    "mirror": saved[f"{key}.mirror"],
                }
            )
    return out


# --------------------------------------------------------------------------- the bank


def _photo_of(starts: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.searchsorted(starts, rows, side="right") - 1


def nearest_other(pool: dict[str, Any], sample: int = 2000) -> npt.NDArray[np.int64]:
    """Distances (bits) of ``sample`` real descriptors to their nearest descriptor in
    another real photo (exact, faiss)."""
    import faiss

    faiss.omp_set_num_threads(1)
    codes, starts = pool["codes"], pool["starts"]
    index = faiss.IndexBinaryFlat(256)
    index.add(codes)
    rows = np.random.default_rng(7).choice(len(codes), sample, replace=False)
    distances, found = index.search(codes[rows], 64)
    own = _photo_of(starts, rows)[:, None]
    other = (_photo_of(starts, np.maximum(found, 0)) != own) & (found >= 0)
    first = np.argmax(other, axis=1)
    return distances[np.arange(sample), first].astype(np.int64)


def grow(work: Path, pool: dict[str, Any], photos: int, moves: npt.NDArray[np.int64]) -> Path:
    """The bank of ``photos`` photos: the real ones, then grown ones (module docstring),
    as ``codes.npy`` (rows x 32), ``places.npy`` and ``starts.npy`` in a folder."""
    real = len(pool["starts"]) - 1
    folder = work / f"bank-{real}-{photos}"
    if (folder / "starts.npy").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    sources = np.concatenate([np.arange(real), rng.integers(0, real, max(0, photos - real))])
    sources = sources[:photos]
    counts = np.diff(pool["starts"])[sources]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Flip masks, each with a number of bits drawn from ``moves``; rows pick one at random.
    masks = np.zeros((1 << 16, 256), dtype=np.uint8)
    for mask, flips in zip(masks, rng.choice(moves, len(masks)), strict=True):
        mask[rng.choice(256, int(flips), replace=False)] = 1
    packed = np.packbits(masks, axis=1)
    codes = np.lib.format.open_memmap(
        folder / "codes.tmp.npy", mode="w+", dtype=np.uint8, shape=(int(starts[-1]), 32)
    )
    places = np.empty((int(starts[-1]), 2), dtype=np.uint16)
    step = 5_000
    for first in range(0, photos, step):
        chosen = sources[first : first + step]
        rows = np.concatenate([np.arange(pool["starts"][s], pool["starts"][s + 1]) for s in chosen])
        block = pool["codes"][rows]
        at = pool["places"][rows].astype(np.int64)
        grown = np.repeat(
            np.arange(first, first + len(chosen)) >= real, counts[first : first + step]
        )
        if grown.any():
            block[grown] ^= packed[rng.integers(0, len(packed), int(grown.sum()))]
            moved = at[grown]
            rng.shuffle(moved)
            at[grown] = np.clip(moved + rng.integers(-300, 301, moved.shape), 0, 9999)
        codes[starts[first] : starts[first] + len(rows)] = block
        places[starts[first] : starts[first] + len(rows)] = at
    codes.flush()
    del codes
    (folder / "codes.tmp.npy").rename(folder / "codes.npy")
    np.save(folder / "places.npy", places)
    np.save(folder / "starts.npy", starts)
    return folder


def values_of(codes: Codes, places: npt.NDArray[np.uint16]) -> list[str]:
    """Keypoint values as stored: ``"<hex64>:<x>,<y>"``."""
    hexes = codes.tobytes().hex()
    return [f"{hexes[64 * n : 64 * n + 64]}:{x},{y}" for n, (x, y) in enumerate(places.tolist())]


# --------------------------------------------------------------------------- measuring


def match_one(
    index: Any,
    query: dict[str, Any],
    bank: dict[str, Any],
    verify: Any,
    threshold: int,
) -> dict[str, Any]:
    """One query image through the local-feature stage as ``Matcher._search``,
    ``_vote_first`` and ``_judge_geometry`` do it: ``search`` on all its keypoint values,
    hits counted per banked photo from the row-to-photo runs (``Tally.of`` with
    ``RowEntries.lookup``, the matcher's own code), the ``SHORTLIST`` photos with most
    votes (at least ``MIN_VOTES``; every photo here is active), the rows of those photos'
    hits read (``rows`` stands in for the database's rows), ``verify`` per shortlisted
    photo and view. Times per step and what matched."""
    values, mirror = query["values"], query["mirror"]
    cpu, wall = time.thread_time(), time.perf_counter()
    found = index.search(values, threshold)
    cpu_search = time.thread_time() - cpu
    count = Tally.of(found, [0] * len(values), values, bank["entries"].lookup, orb_votes)
    shortlist = count.ranked.get(0, [])[:SHORTLIST]
    kept = count.keep(found, [(0, entry) for entry in shortlist])
    cpu_count = time.thread_time() - cpu - cpu_search
    rows: dict[int, tuple[int, str]] = {}
    codes, places, starts = bank["codes"], bank["places"], bank["starts"]
    hit_rows = np.array(sorted({r for hits in kept for r, _ in hits}), dtype=np.int64)
    if len(hit_rows):
        entries = _photo_of(starts, hit_rows).tolist()
        texts = values_of(np.asarray(codes[hit_rows]), places[hit_rows])
        rows = dict(zip(hit_rows.tolist(), zip(entries, texts, strict=True), strict=True))
    groups: dict[int, dict[bool, list[tuple[str, str, int]]]] = {}
    for value, flipped, hits in zip(values, mirror, kept, strict=True):
        for row, distance in hits:
            entry, text = rows[row]
            groups.setdefault(entry, {}).setdefault(flipped, []).append((value, text, distance))
    cpu_rows = time.thread_time() - cpu - cpu_search - cpu_count
    matched: dict[int, int] = {}
    for entry in shortlist:
        best = 0
        for flipped, pairs in groups[entry].items():
            geometry = verify(pairs, mirrored=flipped)
            if geometry is not None:
                best = max(best, geometry.inliers)
        if best:
            matched[entry] = best
    cpu_total = time.thread_time() - cpu
    return {
        "cpu": cpu_total,
        "wall": time.perf_counter() - wall,
        "cpu_search": cpu_search,
        "cpu_rows": cpu_rows,
        "cpu_count": cpu_count,
        "cpu_verify": cpu_total - cpu_search - cpu_rows - cpu_count,
        "hits": int(sum(len(h) for h in found)),
        "rows_read": len(hit_rows),
        "photos": len(count.ranked.get(0, [])),
        "verified": len(shortlist),
        "matched": matched,
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


class ExactIndex:
    """Every row compared (faiss's flat index): the reference for recall."""

    def __init__(self, codes: Codes) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexBinaryFlat(256)
        self.index.add(np.ascontiguousarray(codes))

    def search(self, values: list[str], radius: int) -> list[list[tuple[int, int]]]:
        from amber.signals.local import descriptors

        distances, found = self.index.search(descriptors(values), 8)
        return [
            [(int(i), int(d)) for i, d in zip(row_i, row_d, strict=True) if i >= 0 and d <= radius]
            for row_i, row_d in zip(found, distances, strict=True)
        ]


def measure(options: dict[str, Any]) -> dict[str, Any]:
    """One bank size and index kind, in this (child) process: build, memory, queries."""
    from amber.index.binary import BinaryIndex
    from amber.signals.local import OrbSignal

    work, folder = Path(options["work"]), Path(options["bank"])
    photos, kind = options["photos"], options["kind"]
    orb = OrbSignal()
    starts = np.load(folder / "starts.npy")[: photos + 1]
    rows = int(starts[-1])
    codes = np.load(folder / "codes.npy", mmap_mode="r")[:rows]
    places = np.load(folder / "places.npy", mmap_mode="r")[:rows]
    runs = RowEntries()  # which photo each row is, as the matcher's sync records it
    for first in range(0, rows, CHUNK):
        ids = np.arange(first, min(rows, first + CHUNK), dtype=np.int64)
        runs.add(ids, _photo_of(starts, ids))
    bank = {"codes": codes, "places": places, "starts": starts, "entries": runs}
    queries = query_set(work, 1, COPIED, UNKNOWN)
    if options.get("limit"):
        queries = queries[: options["limit"]]
    pool_seeds = np.load(work / f"real-{options['real']}.npz")["seeds"]
    photo_of_seed = {int(s): n for n, s in enumerate(pool_seeds) if s >= 0}
    for query in queries:
        query["values"] = values_of(query["codes"], query["places"])
    before = resident()
    started, cpu = time.perf_counter(), time.process_time()
    index: Any
    if kind == "exact":
        index = ExactIndex(np.asarray(codes))
    else:
        index = BinaryIndex(orb)
        for first in range(0, rows, CHUNK):
            last = min(rows, first + CHUNK)
            index.add(
                range(first, last), values_of(np.asarray(codes[first:last]), places[first:last])
            )
        index.search(queries[0]["values"][:1], 64)  # settles: cells drawn, rows grouped
    build = {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }
    after = resident()
    out: dict[str, Any] = {
        "photos": photos,
        "rows": rows,
        "kind": kind,
        "build": build,
        "rss_mb_before": before,
        "rss_mb_after": after,
        "rss_anon_bytes_per_photo": round((after["RssAnon"] - before["RssAnon"]) * 1e6 / photos),
        "settings": [],
    }
    if kind != "exact":
        out["cells"] = index.cells
        out["index_bytes"] = index.nbytes()
        out["index_bytes_per_photo"] = round(index.nbytes() / photos)
    if options.get("freeze"):
        # What was built and loaded so far is kept out of Python's garbage collections, as
        # a long-running process could do after start-up: without it a full collection
        # (about 100 ms over this process's objects) lands on one query in 40 or so, and
        # is most of the p99.
        gc.collect()
        gc.freeze()
    out["gc_frozen"] = bool(options.get("freeze"))
    for nprobe in options["nprobes"] if kind != "exact" else [0]:
        if kind != "exact":
            index.nprobe = nprobe
        for query in queries[:3]:  # warm up (numba's cache, faiss)
            match_one(index, query, bank, orb.verify, orb.default_threshold)
        results = []
        load = [round(x, 2) for x in os.getloadavg()]
        for query in queries:
            measured = match_one(index, query, bank, orb.verify, orb.default_threshold)
            own = photo_of_seed.get(query["seed"], -1) if query["seed"] >= 0 else -1
            measured["own"] = own in measured["matched"]
            measured["wrong"] = sorted(set(measured["matched"]) - {own})
            measured["edit"] = query["edit"]
            results.append(measured)
        copies_ = [r for r in results if not r["edit"].startswith("unknown")]
        by_edit = {}
        for edit in sorted({r["edit"] for r in copies_}):
            chosen = [r for r in copies_ if r["edit"] == edit]
            by_edit[edit] = round(sum(r["own"] for r in chosen) / len(chosen), 3)
        out["settings"].append(
            {
                "nprobe": nprobe if kind != "exact" else None,
                "queries": len(results),
                "load_average": load,
                "cpu": _percentiles([r["cpu"] for r in results]),
                "wall": _percentiles([r["wall"] for r in results]),
                "cpu_search": _percentiles([r["cpu_search"] for r in results]),
                "cpu_rows": _percentiles([r["cpu_rows"] for r in results]),
                "cpu_count": _percentiles([r["cpu_count"] for r in results]),
                "cpu_verify": _percentiles([r["cpu_verify"] for r in results]),
                "hits_mean": round(float(np.mean([r["hits"] for r in results])), 1),
                "photos_voted_mean": round(float(np.mean([r["photos"] for r in results])), 1),
                "rows_read_mean": round(float(np.mean([r["rows_read"] for r in results])), 1),
                "verified_mean": round(float(np.mean([r["verified"] for r in results])), 2),
                "recall": round(sum(r["own"] for r in copies_) / max(1, len(copies_)), 3),
                "recall_by_edit": by_edit,
                "copies": len(copies_),
                "false_matches": sum(len(r["wrong"]) for r in results),
                "unknown_queries": len(results) - len(copies_),
                "unknown_matched": sum(
                    bool(r["matched"]) for r in results if r["edit"].startswith("unknown")
                ),
            }
        )
        print(
            json.dumps({k: v for k, v in out.items() if k != "settings"} | out["settings"][-1]),
            file=sys.stderr,
            flush=True,
        )
    return out


def measure_matcher(options: dict[str, Any]) -> dict[str, Any]:
    """The same queries through amber's own ``Matcher.match`` on a SQLite database that
    holds ``photos`` banked photos (imported as amber's CSV, one entry a photo): the whole
    local-feature stage with its database reads, for comparison with ``measure``'s steps
    at the same size."""
    import sqlalchemy as sa

    from amber import open_engine
    from amber.signals.base import SignalValue
    from amber.store.tables import bank_entries

    work, folder = Path(options["work"]), Path(options["bank"])
    photos = options["photos"]
    starts = np.load(folder / "starts.npy")[: photos + 1]
    codes = np.load(folder / "codes.npy", mmap_mode="r")
    places = np.load(folder / "places.npy", mmap_mode="r")
    queries = query_set(work, 1, COPIED, UNKNOWN)
    for query in queries:
        query["values"] = values_of(query["codes"], query["places"])
    pool_seeds = np.load(work / f"real-{options['real']}.npz")["seeds"]
    photo_of_seed = {int(s): n for n, s in enumerate(pool_seeds) if s >= 0}
    place = Path(tempfile.mkdtemp(prefix="amber-local-matcher-", dir=work))
    bank_csv = place / "bank.csv"
    with bank_csv.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["signal_type", "signal", "label"])
        for n in range(photos):
            first, last = int(starts[n]), int(starts[n + 1])
            text = " ".join(values_of(np.asarray(codes[first:last]), places[first:last]))
            writer.writerow(["orb", text, f"photo-{n}"])
    engine = open_engine(db=place / "amber.db", vault=place / "vault", index_dir=place / "index")
    started = time.perf_counter()
    engine.banks.create("bank")
    engine.banks.import_file("bank", bank_csv, format="amber-csv")
    imported = time.perf_counter() - started
    started = time.perf_counter()
    engine.matcher.sync()
    engine.matcher.match([[SignalValue("orb", queries[0]["values"][0], variant="keypoint")]])
    synced = time.perf_counter() - started
    with engine.db.connect() as conn:
        labels = conn.execute(sa.select(bank_entries.c.id, bank_entries.c.label)).all()
    entry_photo = {int(i): int(str(label).removeprefix("photo-")) for i, label in labels}
    if options.get("freeze"):
        gc.collect()
        gc.freeze()
    results = []
    load = [round(x, 2) for x in os.getloadavg()]
    for n, query in enumerate(queries):
        media = [
            [
                SignalValue("orb", value, variant="mirror" if flipped else "keypoint")
                for value, flipped in zip(query["values"], query["mirror"], strict=True)
            ]
        ]
        cpu, wall = time.thread_time(), time.perf_counter()
        found = engine.matcher.match(media)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        if n < 3:
            continue  # warm-up
        own = photo_of_seed.get(query["seed"], -1) if query["seed"] >= 0 else -1
        matched = {entry_photo[m.entry_id] for m in found}
        results.append(
            {"cpu": cpu, "wall": wall, "own": own in matched, "wrong": len(matched - {own})}
        )
    engine.close()
    shutil.rmtree(place, ignore_errors=True)
    copies_ = [r for r, q in zip(results, queries[3:], strict=True) if q["seed"] >= 0]
    return {
        "photos": photos,
        "kind": "matcher",
        "rows": int(starts[-1]),
        "import_s": round(imported, 1),
        "sync_s": round(synced, 1),
        "nprobe": engine.matcher.indexes["orb"].nprobe,  # type: ignore[attr-defined]
        "queries": len(results),
        "load_average": load,
        "cpu": _percentiles([r["cpu"] for r in results]),
        "wall": _percentiles([r["wall"] for r in results]),
        "recall": round(sum(r["own"] for r in copies_) / max(1, len(copies_)), 3),
        "false_matches": sum(r["wrong"] for r in results),
    }


def _child(options: dict[str, Any]) -> dict[str, Any]:
    """``measure`` in a fresh process (RSS of the index alone)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(options, handle)
    done = subprocess.run(
        [sys.executable, __file__, "--child", handle.name],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.unlink(handle.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--real", type=int, default=3000)
    parser.add_argument("--nprobes", default="8,16,32")
    parser.add_argument("--exact", type=int, default=60, help="queries for the exact reference")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "amber-local-scale"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--matcher",
        type=int,
        default=0,
        help="also bank this many photos in SQLite and time amber's Matcher.match on them",
    )
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() after the build (the p99 without GC)"
    )
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        options = json.loads(Path(args.child).read_text())
        chosen = measure_matcher if options["kind"] == "matcher" else measure
        print(json.dumps(chosen(options)))
        return
    if args.quick:
        args.sizes, args.real, args.exact = "2000", 300, 20
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    machine = describe(faiss=__import__("faiss").__version__)
    queries = query_set(args.work, args.workers, COPIED, UNKNOWN)
    pool = real_pool(args.work, args.real, args.workers)
    moves = nearest_other(pool)
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = grow(args.work, pool, max(sizes), moves)
    common = {"work": str(args.work), "bank": str(folder), "real": args.real}
    common["freeze"] = args.freeze
    runs = []
    for photos in sizes:
        runs.append(
            _child(
                common
                | {
                    "photos": photos,
                    "kind": "cells",
                    "nprobes": [int(n) for n in args.nprobes.split(",")],
                }
            )
        )
    if args.exact:
        runs.append(_child(common | {"photos": min(sizes), "kind": "exact", "limit": args.exact}))
    if args.matcher:
        runs.append(_child(common | {"photos": args.matcher, "kind": "matcher"}))
    result = {
        "machine": machine,
        "command": " ".join(sys.argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "uptime_at_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "real_photos": len(pool["starts"]) - 1,
        "real_rows": len(pool["codes"]),
        "real_seconds": round(float(pool["seconds"]), 1),
        "query_images": len(queries),
        "nearest_other_bits": {
            q: int(np.percentile(moves, p)) for q, p in (("p10", 10), ("p50", 50), ("p90", 90))
        },
        "runs": runs,
    }
    name = "local_scale-quick.json" if args.quick else "local_scale.json"
    if args.freeze:
        name = name.replace(".json", "-freeze.json")
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
