"""The PDQ index past 10 million hashes and on real hash distributions (issue 16).

Random 256-bit hashes are the easy case for multi-index hashing: every chunk value is
equally likely, so every bucket holds about as many rows. Real PDQ hashes are not like
that: their bits are biased and correlated (similar scenes, the frames of a video, memes
of one template), which fills some buckets far past the average and lengthens the probes
of the queries that land there. This benchmark measures the index on both, side by side.

**Real hashes** (``real_hashes``, cached in the work folder) are PDQ hashes of real and
generated content, all available offline:

* every frame of the vPDQ sample videos in ``/work/shared/conformance/vpdq/videos``
  (``CONFORMANCE``), decoded with PyAV (``amber.signals.vpdq.hash_video``);
* the PDQ reference images in ``/work/shared/conformance/pdq`` and generated photos
  (``amber.synthetic.photo``), each with dozens of random edits (crops, small rotations,
  JPEG re-encodes, resizes, brightness and contrast, grey, mirror, borders, blur,
  captions), and meme templates (one photo, many captions);
* every frame of generated clips (``amber.synthetic.video``) and of their edited
  re-encodes (captioned, grey, cropped, letterboxed, mirrored, watermarked).

A content *group* is one source and its edits (a photo, a video, a clip). A tenth of the
groups is held out of the bank: the "unknown content" queries come from them.

**Realistic bank** (``families``): whole real groups drawn at random, each copy moved by
one XOR pattern of ``MOVE`` bits (balanced bits more often than biased ones) and each row
then flipped 0..``JITTER`` bits, weighted by the bias: every copy keeps its group's inner
structure (frame-to-frame, edit-to-edit distances) and the per-bit bias mostly survives.

**Stress bank** (``copies``): each row a real hash (uniformly chosen) whose bits are each
*resampled* from the real set's per-bit marginal with probability ``rho`` (uniform in
``RHO``): a bit is flipped with probability ``rho * P(the other value)``, so biased bits
rarely flip and the per-bit bias survives exactly, while correlations survive in the
``1 - rho`` of the bits kept. At 10 million rows that is 300 copies of every real hash,
from near-duplicates to relatives 60 bits away: far denser than a real bank.

Queries of both: half near-duplicates of stored rows (0..36 bits flipped the same
bias-weighted way), half from held-out groups (changed the way the bank's rows were).

**Random bank**: ``benchmarks/matching.py``'s bank and queries (random hashes plus 3% of
rows in near-duplicate families), so the figures line up with ``matching.json``.

For each size and distribution the index is built in a child process, then opened and
measured in a fresh one: open, RSS before and after, 500 warm-up queries, then
``--queries`` single queries at ``--radius``, one thread, wall and CPU time. Afterwards
the same process counts, per query, the postings the plan reads and the candidates it
checks with a popcount (``probe_counts``, the kernels' own bucket and suffix code), and
compares the answers with a scan of every row on ``--recall`` queries. Occupancy skew is
read from the base's bucket offsets.

Run from the repository root:

    python benchmarks/index_scale.py [--sizes 1000000,10000000] [--kinds random,families]
        [--large 30000000:families,100000000:random] [--shape TABLES,BITS,BUCKET_BITS]
        [--before SRC] [--keep] [--queries 2000] [--recall 200] [--radius 31]
        [--work DIR] [--quick]

``--sizes`` runs every ``--kinds``; ``--large`` adds single runs (recall checked on
``--large-recall`` queries: a numpy pass over 100 million rows takes seconds a query);
``--shape`` forces the tables of every build, to compare shapes; ``--before SRC`` builds
and measures each bank with an earlier amber too (its ``src`` folder, for instance from
``git archive <commit> src``), side by side with this one; ``--keep`` keeps the banks in
``--work`` for a later run. 100 million rows need
about 10 GB of memory while building and 12 GB of disk. Writes
``benchmarks/results/index_scale.json`` (``index_scale-quick.json`` with ``--quick``:
100,000 rows, half a minute once the real hashes are cached).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
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

from matching import make_bank, make_queries, resident, timings

Hashes = npt.NDArray[np.uint8]
RESULTS = Path(__file__).parent / "results"
CONFORMANCE = Path("/work/shared/conformance")
WARMUP = 500
#: ``rho``, the share of a bank row's bits resampled from the real marginals.
RHO = (0.02, 0.6)
#: Bits a copy of a real group is moved by (one XOR pattern for the whole group) ...
MOVE = (24, 64)
#: ... and the most bits each of its rows is then flipped by, on its own.
JITTER = 4
#: Rows generated at a time (256 bytes of bits per row while perturbing).
CHUNK = 250_000


# --------------------------------------------------------------------------- real hashes


def _pack(bits: Any) -> bytes:
    """pdqhash's 256 0/1 values as 32 bytes, most significant bit first (as amber stores)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _image_hash(image: Any) -> bytes:
    """PDQ of a PIL image."""
    import pdqhash

    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return _pack(pdqhash.compute(pixels)[0])


def _edited(image: Any, rng: np.random.Generator) -> Any:
    """``image`` after one to three random edits of the kinds re-uploads make."""
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 10))
        w, h = image.size
        if kind == 0:  # crop
            cw, ch = int(w * rng.uniform(0.7, 0.97)), int(h * rng.uniform(0.7, 0.97))
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            image = image.crop((left, top, left + cw, top + ch))
        elif kind == 1:  # small rotation
            image = image.rotate(float(rng.uniform(-6, 6)), resample=Image.Resampling.BILINEAR)
        elif kind == 2:  # JPEG re-encode
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=int(rng.integers(15, 90)))
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        elif kind == 3:  # resize
            scale = rng.uniform(0.3, 0.9)
            image = image.resize((max(8, int(w * scale)), max(8, int(h * scale))))
        elif kind == 4:
            image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.6, 1.4)))
            image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.6, 1.4)))
        elif kind == 5:
            image = ImageOps.grayscale(image).convert("RGB")
        elif kind == 6:
            image = ImageOps.mirror(image)
        elif kind == 7:  # border or letterbox
            pad = int(rng.integers(2, max(3, h // 5)))
            image = ImageOps.expand(image, border=(0, pad, 0, pad), fill=int(rng.integers(0, 256)))
        elif kind == 8:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        else:  # caption
            image = _captioned(image, f"caption {int(rng.integers(0, 10**6))}", rng)
    return image


def _captioned(image: Any, text: str, rng: np.random.Generator) -> Any:
    """``image`` with ``text`` over its top or bottom, as memes have."""
    from PIL import ImageDraw, ImageFont

    image = image.copy()
    w, h = image.size
    font = ImageFont.load_default(size=max(8, h // int(rng.integers(8, 14))))
    y = h * 0.1 if rng.random() < 0.5 else h * 0.9
    ImageDraw.Draw(image).text(
        (w / 2, y), text.upper(), fill=(255, 255, 255), font=font, anchor="mm",
        stroke_width=2, stroke_fill=(0, 0, 0),
    )  # fmt: skip
    return image


def _conformance_images() -> list[Path]:
    """The PDQ reference images, if present."""
    folder = CONFORMANCE / "pdq"
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".jpeg"))


def _video_hashes(data: bytes, source: str) -> list[bytes]:
    """PDQ of every frame of a video (scaled to at most 256 pixels a side)."""
    from amber.signals.vpdq import hash_video

    video = hash_video(data, max_side=256, source=source)
    return [bytes.fromhex(feature.pdq_hex) for feature in video.features]


def real_hashes(
    work: Path, *, photos: int, edits: int, clips: int
) -> tuple[Hashes, npt.NDArray[np.int64], dict[str, int], float]:
    """PDQ hashes of real and generated content, their group, counts by source and the
    seconds they took to compute.

    Cached as ``real-*.npz`` in ``work`` (three minutes to compute on a busy machine).
    """
    cache = work / f"real-{photos}-{edits}-{clips}.npz"
    if cache.exists():
        saved = np.load(cache)
        by_source = json.loads(str(saved["sources"]))
        return saved["hashes"], saved["groups"], by_source, float(saved["seconds"])
    from PIL import Image

    from amber import synthetic

    rng = np.random.default_rng(16)
    rows: list[bytes] = []
    groups: list[int] = []
    sources: dict[str, int] = {}

    def keep(source: str, hashes: list[bytes]) -> None:
        group = max(groups, default=-1) + 1
        rows.extend(hashes)
        groups.extend([group] * len(hashes))
        sources[source] = sources.get(source, 0) + len(hashes)

    started = time.perf_counter()
    for path in sorted((CONFORMANCE / "vpdq" / "videos").glob("*.mp4")):
        keep("sample video frames", _video_hashes(path.read_bytes(), path.name))
    for path in _conformance_images():
        image = Image.open(path).convert("RGB")
        image.thumbnail((640, 640))
        keep("reference images and edits", [_image_hash(image)] + [
            _image_hash(_edited(image, rng)) for _ in range(edits)
        ])  # fmt: skip
    print(f"  conformance data hashed ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    for seed in range(photos):
        image = synthetic.photo(10_000 + seed, 320, 240)
        keep("generated photos and edits", [_image_hash(image)] + [
            _image_hash(_edited(image, rng)) for _ in range(edits // 4)
        ])  # fmt: skip
    for template in range(max(1, photos // 50)):
        image = synthetic.photo(90_000 + template, 400, 400)
        keep("meme templates and captions", [
            _image_hash(_captioned(image, f"when the {word} hits", rng))
            for word in range(edits * 2)
        ])  # fmt: skip
    print(f"  photos hashed ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="amber-clips-"))
    try:
        edits_of = (
            lambda f: synthetic.captioned(f, "YOU WONT BELIEVE THIS"),
            synthetic.grey,
            lambda f: synthetic.cropped(f, 0.8),
            lambda f: synthetic.boxed(f, (320, 320)),
            synthetic.mirrored,
            synthetic.watermarked,
        )
        for clip in range(clips):
            path = synthetic.video(
                folder / f"{clip}.mp4", 500 + clip, width=320, height=180, fps=10,
                seconds=24, scene_seconds=4, bit_rate=400_000,
            )  # fmt: skip
            hashes = _video_hashes(path.read_bytes(), path.name)
            if clip % 3 == 0:  # edited re-uploads of every third clip
                frames = synthetic.frames_of(path)
                for number, edit in enumerate(edits_of):
                    out = synthetic.write_video(folder / f"{clip}-{number}.mp4", edit(frames))
                    hashes += _video_hashes(out.read_bytes(), out.name)
            keep("generated clips and edited re-uploads", hashes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"  clips hashed ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    table = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 32).copy()
    group_array = np.array(groups, np.int64)
    seconds = time.perf_counter() - started
    np.savez(cache, hashes=table, groups=group_array, sources=json.dumps(sources), seconds=seconds)
    return table, group_array, sources, seconds


# --------------------------------------------------------------------------- banks


def bit_marginals(hashes: Hashes) -> npt.NDArray[np.float64]:
    """Share of rows with each of the 256 bits set (amber's byte order, MSB first)."""
    total = np.zeros(256, np.float64)
    for start in range(0, hashes.shape[0], CHUNK):
        total += np.unpackbits(hashes[start : start + CHUNK], axis=1).sum(axis=0)
    result: npt.NDArray[np.float64] = total / max(1, hashes.shape[0])
    return result


def resampled(
    rows: Hashes, rho: npt.NDArray[np.float64], ones: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> Hashes:  # fmt: skip
    """``rows`` with each bit of row ``i`` redrawn, with probability ``rho[i]``, from
    the marginal ``ones`` (the share of set bits): the marginals are kept exactly."""
    bits = np.unpackbits(rows, axis=1)
    redraw = rng.random(bits.shape, np.float32) < rho[:, None].astype(np.float32)
    fresh = rng.random(bits.shape, np.float32) < ones[None, :].astype(np.float32)
    bits[redraw] = fresh[redraw]
    return np.packbits(bits, axis=1)


def weighted_flips(
    rows: Hashes, counts: npt.NDArray[np.int64], weight: npt.NDArray[np.floating[Any]],
    rng: np.random.Generator,
) -> Hashes:  # fmt: skip
    """``rows`` with ``counts[i]`` distinct bits flipped in row ``i``, bit ``j`` chosen
    with weight ``weight[..., j]`` (``(256,)`` or one row of weights per row)."""
    bits = np.unpackbits(rows, axis=1)
    # Weighted sampling without replacement: the ``count`` smallest of -log(u) / w.
    keys = rng.standard_exponential(bits.shape, np.float32) / weight.astype(np.float32)
    for count in np.unique(counts).tolist():
        if count == 0:
            continue
        chosen = np.flatnonzero(counts == count)
        picks = np.argpartition(keys[chosen], count - 1, axis=1)[:, :count]
        bits[chosen[:, None], picks] ^= 1
    return np.packbits(bits, axis=1)


def flipped_toward_marginals(
    rows: Hashes, counts: npt.NDArray[np.int64], ones: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> Hashes:  # fmt: skip
    """``rows`` with ``counts[i]`` bits flipped in row ``i``, each chosen with weight
    ``P(the other value)``: a biased bit rarely leaves its usual value."""
    bits = np.unpackbits(rows, axis=1)
    low = ones.astype(np.float32)[None, :]
    weight = np.where(bits == 1, np.float32(1) - low, low) + np.float32(1e-3)
    return weighted_flips(rows, counts, weight, rng)


def held_out(groups: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.bool_]:
    """Which real hashes belong to the tenth of the groups kept out of every bank."""
    rng = np.random.default_rng([seed, 16])
    count = int(groups.max()) + 1
    return np.isin(groups, rng.choice(count, count // 10, replace=False))


def moved_families(
    real: Hashes, groups: npt.NDArray[np.int64], size: int, ones: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> Hashes:  # fmt: skip
    """``size`` rows made of whole real groups, each copy moved by one XOR pattern.

    Groups are drawn uniformly (so each source keeps its share of rows); a copy's pattern
    flips ``MOVE`` bits, balanced bits more often than biased ones; each row then gets
    0..``JITTER`` bias-weighted flips of its own.
    """
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, groups.shape[0]])
    picks = rng.integers(0, starts.shape[0], 2 * size // int(lengths.mean()) + 16)
    ends = np.cumsum(lengths[picks])
    picks = picks[: int(np.searchsorted(ends, size)) + 1]
    family = np.repeat(np.arange(picks.shape[0]), lengths[picks])[:size]
    first_row = np.r_[0, ends[: picks.shape[0] - 1]]  # of each family in the bank
    member = starts[picks][family] + np.arange(size) - first_row[family]
    balance = 1.0 - 2.0 * np.abs(ones - 0.5) + 1e-3
    patterns = np.empty((picks.shape[0], 32), np.uint8)
    for start in range(0, picks.shape[0], CHUNK):
        part = slice(start, min(start + CHUNK, picks.shape[0]))
        count = patterns[part].shape[0]
        moves = rng.integers(MOVE[0], MOVE[1] + 1, int(count))
        patterns[part] = weighted_flips(np.zeros((count, 32), np.uint8), moves, balance, rng)
    bank = np.empty((size, 32), np.uint8)
    for start in range(0, size, CHUNK):
        part = slice(start, min(start + CHUNK, size))
        rows = real[member[part]] ^ patterns[family[part]]
        jitter = rng.integers(0, JITTER + 1, rows.shape[0])
        bank[part] = flipped_toward_marginals(rows, jitter, ones, rng)
    order = rng.permutation(size)
    return bank[order]


def families_bank(
    size: int, real: Hashes, groups: npt.NDArray[np.int64], seed: int
) -> tuple[Hashes, Hashes]:
    """The realistic bank (see the module docstring) and the held-out real hashes."""
    held = held_out(groups, seed)
    ones = bit_marginals(real)
    rng = np.random.default_rng([seed, size])
    return moved_families(real[~held], groups[~held], size, ones, rng), real[held]


def copies_bank(
    size: int, real: Hashes, groups: npt.NDArray[np.int64], seed: int
) -> tuple[Hashes, Hashes]:
    """The stress bank: each row a real hash with a share ``rho`` of its bits redrawn."""
    held = held_out(groups, seed)
    ones = bit_marginals(real)
    sources = real[~held]
    bank = np.empty((size, 32), np.uint8)
    rng = np.random.default_rng([seed, size])
    for start in range(0, size, CHUNK):
        end = min(start + CHUNK, size)
        picks = rng.integers(0, sources.shape[0], end - start)
        rho = rng.uniform(*RHO, end - start)
        bank[start:end] = resampled(sources[picks], rho, ones, rng)
    return bank, real[held]


def real_queries(
    kind: str, bank: Hashes, held: Hashes, held_groups: npt.NDArray[np.int64],
    ones: npt.NDArray[np.float64], count: int, seed: int,
) -> Hashes:  # fmt: skip
    """Half near-duplicates of stored rows (0..36 bits), half unknown content: held-out
    real hashes changed as the bank's rows were (``kind``)."""
    rng = np.random.default_rng([seed, bank.shape[0], 1])
    near = count // 2
    queries = np.empty((count, 32), np.uint8)
    sources = np.sort(rng.integers(0, bank.shape[0], near))
    queries[:near] = flipped_toward_marginals(bank[sources], rng.integers(0, 37, near), ones, rng)
    if kind == "copies":
        picks = rng.integers(0, held.shape[0], count - near)
        queries[near:] = resampled(held[picks], rng.uniform(*RHO, count - near), ones, rng)
    else:
        queries[near:] = moved_families(held, held_groups, count - near, ones, rng)
    return queries[rng.permutation(count)]


# --------------------------------------------------------------------------- statistics


def bit_bias(hashes: Hashes) -> dict[str, float]:
    """Per-bit bias: mean and max of |p - 0.5| over the 256 bits, and mean |correlation|
    between neighbouring bits of the same chunk (on up to 200,000 rows)."""
    ones = bit_marginals(hashes)
    # The index's bit order: bit i is bit i % 8 of byte i // 8 (little-endian words).
    sample = np.unpackbits(hashes[:: max(1, hashes.shape[0] // 200_000)], axis=1, bitorder="little")
    centred = sample - sample.mean(axis=0)
    scale = centred.std(axis=0) + 1e-12
    neighbours = (centred[:, :-1] * centred[:, 1:]).mean(axis=0) / (scale[:-1] * scale[1:])
    return {
        "mean_abs_bias": float(np.abs(ones - 0.5).mean()),
        "max_abs_bias": float(np.abs(ones - 0.5).max()),
        "mean_abs_neighbour_correlation": float(np.abs(neighbours).mean()),
    }


def occupancy(offsets: npt.NDArray[np.uint32]) -> dict[str, float]:
    """Bucket occupancy skew of a base, from its offsets, averaged over its tables.

    ``collision_factor`` is ``2**b * sum(share_k ** 2)``: how many times the average bucket
    a query drawn from the stored rows lands in (1 for perfectly even buckets, about 1 +
    2**b / n for random rows); ``top_share`` is the share of rows in the fullest 0.1% of
    buckets.
    """
    counts = np.diff(offsets.astype(np.int64), axis=1)
    rows = counts[0].sum()
    share = counts / rows
    factor = counts.shape[1] * (share**2).sum(axis=1)
    top = max(1, counts.shape[1] // 1000)
    top_share = np.sort(counts, axis=1)[:, -top:].sum(axis=1) / rows
    return {
        "mean_rows_per_bucket": float(rows / counts.shape[1]),
        "max_rows_per_bucket": int(counts.max()),
        "empty_bucket_share": float((counts == 0).mean()),
        "collision_factor": float(factor.mean()),
        "collision_factor_worst_table": float(factor.max()),
        "top_0.1pct_bucket_row_share": float(top_share.mean()),
    }


def probe_counts(index: Any, queries: Hashes, radius: int) -> npt.NDArray[np.int64]:
    """Per query: postings read, candidates checked with a popcount, buckets probed.

    Walks the same plan with the kernels' own bucket and suffix code (``_buckets``,
    ``_gather``), without verifying; ``(q, 3)`` int64, zeros when the plan scans. Where
    table 0's buckets are runs of rows (amber since format 3: no postings), its rows
    count as postings read and those whose chunk is near enough as candidates.
    """
    from numba import njit

    from amber.index import kernels, probes
    from amber.index.layout import row_bits

    base = index._state.base  # the benchmark reads the mapped base the search uses
    plan = probes.plan(base.tables, base.rows, radius)
    out = np.zeros((queries.shape[0], 3), np.int64)
    if plan is None:
        return out

    runs = hasattr(kernels, "_verify_runs")

    @njit(cache=False)
    def count(
        queries: Any, hashes: Any, offsets: Any, postings: Any, table_bits: int,
        bucket_bits: int, row_bits: int, thresholds: Any, masks: Any, mask_flips: Any,
        mask_ends: Any, rows: int, runs: bool, out: Any,
    ) -> None:  # fmt: skip
        width = row_bits + table_bits - bucket_bits
        bucket_mask = np.uint64((1 << bucket_bits) - 1)
        most = mask_ends[max(thresholds)]
        starts = np.empty(most, np.int64)
        ends = np.empty(most, np.int64)
        allowed = np.empty(most, np.int64)
        candidates = np.empty(4096, np.int64)
        for number in range(queries.shape[0]):
            q = queries[number]
            for table in range(thresholds.shape[0]):
                flips = thresholds[table]
                if flips < 0:
                    continue
                key = kernels.chunk(q[0], q[1], q[2], q[3], table * table_bits, table_bits)
                probed = mask_ends[flips]
                total = kernels._buckets(
                    offsets, table, np.int64(key & bucket_mask), flips, masks, mask_flips,
                    probed, rows, starts, ends, allowed,
                )  # fmt: skip
                if total > candidates.shape[0]:
                    candidates = np.empty(2 * total, np.int64)
                if runs and table == 0:
                    found = 0
                    for probe in range(probed):
                        for row in range(starts[probe], ends[probe]):
                            near = (hashes[row, 0] ^ key) & ((1 << table_bits) - 1)
                            found += kernels.popcount(np.uint64(near)) <= flips
                else:
                    found = kernels._gather(
                        postings, starts, ends, allowed, probed, key >> np.uint64(bucket_bits),
                        width, row_bits, candidates,
                    )  # fmt: skip
                out[number, 0] += total
                out[number, 1] += found
                out[number, 2] += probed

    words = np.ascontiguousarray(queries).view(np.uint64)
    tables = base.tables
    count(
        words, base.words, base.offsets, base.postings, tables.table_bits, tables.bucket_bits,
        row_bits(base.rows), plan.thresholds, plan.masks, plan.mask_flips, plan.mask_ends,
        base.rows, runs, out,
    )  # fmt: skip
    return out


def brute_force(hashes: Hashes, query: Hashes, radius: int) -> list[int]:
    """Rows within ``radius`` of one query, by numpy popcount over every row."""
    words, target = hashes.view(np.uint64), query.view(np.uint64)
    distance = np.zeros(hashes.shape[0], np.uint8)
    for word in range(4):
        distance += np.bitwise_count(words[:, word] ^ target[word])
    return np.flatnonzero(distance <= radius).tolist()


# --------------------------------------------------------------------------- children
# Each function below runs in a child process of its own (see ``run_child``).


def build(work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Build the index of ``hashes.npy`` under ``work/amber``; time it."""
    from amber.index import PdqIndex, layout

    if options.get("shape"):  # another shape than the row count's, to compare
        shape = layout.Tables(*options["shape"])
        layout.Tables.for_rows = classmethod(lambda cls, rows: shape)  # type: ignore[assignment]
    hashes = np.load(work / "hashes.npy")
    started = time.perf_counter()
    index = PdqIndex.rebuild(work / "amber", np.arange(hashes.shape[0]), hashes)
    seconds = time.perf_counter() - started
    peak = resident()["VmHWM"]
    index.search(hashes[:1], options["radius"])  # compiles the kernels once, if needed
    files = list((work / "amber").iterdir())
    manifest = json.loads((work / "amber" / "manifest.json").read_text())
    return {
        "build_s": seconds,
        "build_peak_rss_mb": peak,
        "disk_bytes": sum(path.stat().st_size for path in files),
        "tables": manifest["base"],
    }


def measure(work: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Open the index, time single queries, count probes, check answers by brute force."""
    from amber.index import PdqIndex, mih

    radius = options["radius"]
    queries = np.load(work / "queries.npy")
    warmup = np.load(work / "warmup.npy")
    # Load the compiled kernels before the baseline (see benchmarks/matching.py).
    scratch = tempfile.mkdtemp()
    tiny = PdqIndex.rebuild(scratch, np.arange(WARMUP), warmup)
    tiny.add([WARMUP], warmup[:1])
    mih._scan_bias = float("inf")
    tiny.search(warmup[:1], radius)
    mih._scan_bias = 1.0
    shutil.rmtree(scratch)
    before = resident()
    started = time.perf_counter()
    index = PdqIndex.open(work / "amber")
    opened = time.perf_counter() - started
    started = time.perf_counter()
    index.search(queries[:1], radius)
    first = time.perf_counter() - started
    for query in warmup:
        index.search(query[None], radius)
    wall, cpu, answers = [], [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.thread_time()
        found = index.search(query[None], radius)[0]
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        answers.append(sorted(id_ for id_, _ in found))
    after = resident()
    rows = index._state.base.rows
    counts = probe_counts(index, queries, radius)
    hits = np.array([len(found) for found in answers])
    hashes = np.load(work / "hashes.npy", mmap_mode="r")
    sample = np.random.default_rng(3).choice(len(queries), options["recall"], replace=False)
    truth = {int(i): brute_force(hashes, queries[i], radius) for i in sample}
    missed = sum(len(set(truth[i]) - set(answers[i])) for i in truth)
    extra = sum(len(set(answers[i]) - set(truth[i])) for i in truth)
    expected = sum(len(rows_) for rows_ in truth.values())
    slowest = np.argsort(wall)[-max(1, len(wall) // 100) :]
    return {
        **timings(wall, cpu),
        "open_s": opened,
        "first_query_s": first,
        "rss_before_open_mb": before["VmRSS"],
        "rss_mb": after["VmRSS"],
        "rss_anon_mb": after["RssAnon"],
        "rss_file_mb": after["RssFile"],
        "resident_bytes_per_hash": (after["VmRSS"] - before["VmRSS"]) * 1e6 / rows,
        "postings_per_query_mean": float(counts[:, 0].mean()),
        "postings_per_query_p99": float(np.percentile(counts[:, 0], 99)),
        "candidates_per_query_mean": float(counts[:, 1].mean()),
        "candidates_per_query_p50": float(np.percentile(counts[:, 1], 50)),
        "candidates_per_query_p99": float(np.percentile(counts[:, 1], 99)),
        "candidates_per_query_max": int(counts[:, 1].max()),
        "buckets_per_query": int(counts[0, 2]),
        "candidates_of_slowest_1pct_mean": float(counts[slowest, 1].mean()),
        "hits_per_query_mean": float(hits.mean()),
        "hits_per_query_p99": float(np.percentile(hits, 99)),
        "recall_queries": len(truth),
        "recall_true_hits": expected,
        "recall": (expected - missed) / expected if expected else 1.0,
        "missed": missed,
        "extra": extra,
        "occupancy": occupancy(np.asarray(index._state.base.offsets)),
    }


CHILDREN = {"build": build, "measure": measure}


def run_child(
    step: str, work: Path, options: dict[str, Any], source: str | None = None
) -> dict[str, Any]:
    """Run one step in a fresh Python process, importing amber from ``source`` (a ``src``
    folder) if given; return what it printed (JSON)."""
    command = [sys.executable, __file__, "--child", step, str(work), json.dumps(options)]
    env = os.environ.copy()
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- one size

KINDS = ("random", "families", "copies")


def make_data(
    kind: str, size: int, real: Hashes, groups: npt.NDArray[np.int64], options: dict[str, Any]
) -> tuple[Hashes, Hashes, Hashes]:
    """Bank, queries and warm-up queries of one distribution."""
    seed = options["seed"]
    if kind == "random":
        bank, _ = make_bank(size, seed)
        queries = make_queries(bank, options["queries"] + WARMUP, seed)
    else:
        held = held_out(groups, seed)
        make = families_bank if kind == "families" else copies_bank
        bank, held_hashes = make(size, real, groups, seed)
        ones = bit_marginals(real)
        queries = real_queries(
            kind, bank, held_hashes, groups[held], ones, options["queries"] + WARMUP, seed
        )
    return bank, queries[WARMUP:], queries[:WARMUP]


def run_one(
    kind: str, size: int, work: Path, real: Hashes, groups: npt.NDArray[np.int64],
    options: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Generate, build and measure one distribution at one size, once per row order.

    With ``options["keep"]`` the bank and queries stay in ``work`` and a later run with
    the same seed and query count reuses them (generating 100 million rows takes 10 to
    20 minutes).
    """
    work.mkdir(parents=True, exist_ok=True)
    data = {"kind": kind, "rows": size, "seed": options["seed"], "queries": options["queries"]}
    saved = work / "data.json"
    if saved.exists() and json.loads(saved.read_text()).get("data") == data:
        print(f"{size:,} rows, {kind}: reusing the bank in {work}", file=sys.stderr, flush=True)
        generated = json.loads(saved.read_text())["generate_s"]
        bias = bit_bias(np.load(work / "hashes.npy", mmap_mode="r"))
    else:
        print(f"{size:,} rows, {kind}: generating", file=sys.stderr, flush=True)
        saved.unlink(missing_ok=True)
        started = time.perf_counter()
        bank, queries, warmup = make_data(kind, size, real, groups, options)
        generated = time.perf_counter() - started
        bias = bit_bias(bank)
        np.save(work / "hashes.npy", bank)
        np.save(work / "queries.npy", queries)
        np.save(work / "warmup.npy", warmup)
        del bank
        saved.write_text(json.dumps({"data": data, "generate_s": generated}))
        print(f"  generated in {generated:.0f} s", file=sys.stderr, flush=True)
    results = []
    sources = ([options["before"]] if options.get("before") else []) + [None]
    for source in sources:
        result: dict[str, Any] = {"kind": kind, "rows": size, "generate_s": generated}
        result["source"] = source or "this amber"
        result["bit_bias"] = bias
        print(f"  building with {result['source']}", file=sys.stderr, flush=True)
        result.update(run_child("build", work, options, source))
        print(f"  built in {result['build_s']:.1f} s; measuring", file=sys.stderr, flush=True)
        result.update(run_child("measure", work, options, source))
        result["disk_bytes_per_hash"] = result["disk_bytes"] / size
        result["load_average_after"] = os.getloadavg()
        results.append(result)
    if options.get("keep"):
        shutil.rmtree(work / "amber", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- report

ROWS = [
    ("build (s)", "build_s", "{:.1f}"),
    ("build peak RSS (MB)", "build_peak_rss_mb", "{:,.0f}"),
    ("tables × bits, bucket bits", "shape", "{}"),
    ("open (ms)", "open_ms", "{:.1f}"),
    ("first query after open (ms)", "first_query_ms", "{:.1f}"),
    ("p50 latency (ms)", "p50_ms", "{:.3f}"),
    ("p99 latency (ms)", "p99_ms", "{:.3f}"),
    ("p50 CPU time (ms)", "cpu_p50_ms", "{:.3f}"),
    ("p99 CPU time (ms)", "cpu_p99_ms", "{:.3f}"),
    ("postings read per query (mean)", "postings_per_query_mean", "{:,.0f}"),
    ("candidates per query (mean)", "candidates_per_query_mean", "{:,.0f}"),
    ("candidates per query (p99)", "candidates_per_query_p99", "{:,.0f}"),
    ("candidates per query (max)", "candidates_per_query_max", "{:,.0f}"),
    ("hits per query (mean)", "hits_per_query_mean", "{:.1f}"),
    ("hits per query (p99)", "hits_per_query_p99", "{:,.0f}"),
    ("recall vs brute force (sample)", "recall", "{:.4f}"),
    ("extra hits (sample)", "extra", "{:.0f}"),
    ("RSS after queries (MB)", "rss_mb", "{:,.0f}"),
    ("resident bytes per hash", "resident_bytes_per_hash", "{:.1f}"),
    ("on disk bytes per hash", "disk_bytes_per_hash", "{:.1f}"),
    ("per-bit bias, mean abs(p − 0.5)", "mean_abs_bias", "{:.4f}"),
    ("bucket collision factor", "collision_factor", "{:.2f}"),
    ("fullest bucket (rows)", "max_rows_per_bucket", "{:,.0f}"),
]


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One result's figures under the keys ``ROWS`` names."""
    tables = result["tables"]
    return {
        **result,
        **result["bit_bias"],
        **result["occupancy"],
        "shape": f"{tables['tables']} × {tables['table_bits']}, {tables['bucket_bits']}",
        "open_ms": result["open_s"] * 1000,
        "first_query_ms": result["first_query_s"] * 1000,
    }


def heading(result: dict[str, Any]) -> str:
    """A column's heading: the distribution, and the amber it ran when not this one."""
    source = result.get("source", "this amber")
    return result["kind"] + ("" if source == "this amber" else " (before)")


def table(size: int, results: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """One size's figures, distributions side by side."""
    columns = [flat(result) for result in results]
    lines = [
        f"### {size:,} PDQ hashes, radius {options['radius']}, {options['queries']:,} "
        f"single queries (recall checked on {columns[0]['recall_queries']})",
        "",
        "| | " + " | ".join(heading(column) for column in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, key, form in ROWS:
        cells = [form.format(column[key]) for column in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run every size and distribution, print tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--kinds", default=",".join(KINDS), help="distributions at --sizes")
    parser.add_argument(
        "--large", default="", help="more runs as size:kind,... (e.g. 30000000:families)"
    )
    parser.add_argument("--large-recall", type=int, default=50, help="--recall of --large runs")
    parser.add_argument("--shape", help="tables,table_bits,bucket_bits for every build")
    parser.add_argument(
        "--before",
        type=Path,
        help="also build and measure every bank with the amber in this src folder (e.g. "
        "`git archive <commit> src | tar -x -C DIR`, then DIR/src), side by side",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep banks in --work and reuse them in later runs"
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--recall", type=int, default=200, help="queries checked by brute force")
    parser.add_argument("--radius", type=int, default=31)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--photos", type=int, default=1000, help="generated photos")
    parser.add_argument("--edits", type=int, default=40, help="edits per reference image")
    parser.add_argument("--clips", type=int, default=18, help="generated clips")
    parser.add_argument("--work", type=Path, help="keep the real hashes here between runs")
    parser.add_argument("--output", type=Path, help="write the JSON here instead")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 500 queries")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, work, options = args.child
        print(json.dumps(CHILDREN[step](Path(work), json.loads(options))))
        return
    sizes = [int(size) for size in args.sizes.split(",") if size]
    plan = [(size, kind) for size in sizes for kind in args.kinds.split(",")]
    if args.quick:
        plan = [(100_000, kind) for kind in KINDS]
        args.queries, args.recall, args.photos, args.edits, args.clips = 500, 100, 100, 8, 2
    large = [
        (int(size), kind)
        for size, _, kind in (p.partition(":") for p in args.large.split(",") if p)
    ]
    plan += large
    options: dict[str, Any] = {"radius": args.radius, "queries": args.queries, "seed": args.seed}
    options["before"] = str(args.before.resolve()) if args.before else None
    options["keep"] = args.keep
    options["recall"] = args.recall
    if args.shape:
        options["shape"] = [int(part) for part in args.shape.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="amber-index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    print("hashing real content", file=sys.stderr, flush=True)
    real, groups, sources, real_seconds = real_hashes(
        work, photos=args.photos, edits=args.edits, clips=args.clips
    )
    results: list[dict[str, Any]] = []
    loads = []
    try:
        for size, kind in plan:
            recall = args.large_recall if (size, kind) in large else args.recall
            done = run_one(
                kind, size, work / f"{size}-{kind}", real, groups, {**options, "recall": recall}
            )
            loads.extend(result["load_average_after"][0] for result in done)
            results.extend(done)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    random_bias = bit_bias(np.random.default_rng(1).integers(0, 256, (200_000, 32), np.uint8))
    report = {
        "benchmark": "index_scale",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": options,
        "real_hashes": {
            "rows": int(real.shape[0]),
            "groups": int(groups.max()) + 1,
            "by_source": sources,
            "hash_seconds": real_seconds,
            "bit_bias": bit_bias(real),
            "bit_bias_of_random_hashes": random_bias,
        },
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after_each_run": loads,
        },
        "results": results,
    }
    for size in dict.fromkeys(size for size, _ in plan):
        print(table(size, [r for r in results if r["rows"] == size], options) + "\n")
    RESULTS.mkdir(exist_ok=True)
    path = args.output or RESULTS / ("index_scale-quick.json" if args.quick else "index_scale.json")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
