"""The PDQ near-duplicate index: exact against brute force, incremental, persistent, safe,
and shared by several processes."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber.errors import UserError
from amber.index import IndexCorruptError, PdqIndex, brute_force_search, layout, mih, probes

Hashes = npt.NDArray[np.uint8]


def flipped(hash_: Hashes, bits: int, rng: np.random.Generator) -> Hashes:
    """``hash_`` with ``bits`` distinct bits flipped."""
    unpacked = np.unpackbits(hash_)
    unpacked[rng.choice(256, size=bits, replace=False)] ^= 1
    return np.packbits(unpacked)


def planted(rng: np.random.Generator, count: int, radius: int) -> Hashes:
    """Random and clustered hashes, with near-duplicates at distances around ``radius``."""
    rows: list[Hashes] = []
    prototypes = rng.integers(0, 256, (max(1, count // 20), 32), dtype=np.uint8)
    while len(rows) < count:
        kind = rng.integers(3)
        if kind == 0 or not rows:
            rows.append(rng.integers(0, 256, 32, dtype=np.uint8))
        elif kind == 1:  # a cluster: many hashes near one prototype, sharing buckets
            rows.append(
                flipped(prototypes[rng.integers(len(prototypes))], int(rng.integers(0, 12)), rng)
            )
        else:  # a near-duplicate of a stored hash, 0..40 bits or right at the radius
            near_radius = max(0, radius + int(rng.integers(-2, 3)))
            bits = int(rng.integers(0, 41)) if rng.random() < 0.5 else near_radius
            rows.append(flipped(rows[int(rng.integers(len(rows)))], min(bits, 256), rng))
    return np.array(rows, dtype=np.uint8).reshape(-1, 32)


def queries_for(rng: np.random.Generator, stored: Hashes, count: int, radius: int) -> Hashes:
    """Queries: stored hashes moved by about ``radius`` bits, and random hashes."""
    rows = []
    for _ in range(count):
        if len(stored) and rng.random() < 0.8:
            bits = max(0, radius + int(rng.integers(-3, 4)))
            rows.append(flipped(stored[int(rng.integers(len(stored)))], min(bits, 256), rng))
        else:
            rows.append(rng.integers(0, 256, 32, dtype=np.uint8))
    return np.array(rows, dtype=np.uint8).reshape(-1, 32)


def live_reference(index_rows: dict[int, Hashes]) -> tuple[Hashes, npt.NDArray[np.int64]]:
    ids = np.array(sorted(index_rows), dtype=np.int64)
    hashes = np.array([index_rows[i] for i in ids.tolist()], dtype=np.uint8).reshape(-1, 32)
    return hashes, ids


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("scan_bias", [math.inf, 1.0, 0.0], ids=["probe", "default", "scan"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 250),
    radius=st.integers(0, 63),
    in_base=st.floats(0, 1),
    shape=st.tuples(st.integers(1, 12), st.integers(0, 8), st.integers(1, 16)),
)
def test_search_equals_brute_force(
    monkeypatch: pytest.MonkeyPatch,
    scan_bias: float,
    seed: int,
    count: int,
    radius: int,
    in_base: float,
    shape: tuple[int, int, int],
) -> None:
    # Every table shape the kernels accept (chunks straddling words, postings of any
    # width), not only the one picked for the row count.
    bucket_bits, suffix_bits, tables = shape
    table_bits = bucket_bits + suffix_bits
    tables_ = layout.Tables(min(tables, 256 // table_bits), table_bits, bucket_bits)
    monkeypatch.setattr(layout.Tables, "for_rows", classmethod(lambda cls, rows: tables_))
    monkeypatch.setattr(mih, "_scan_bias", scan_bias)
    rng = np.random.default_rng(seed)
    hashes = planted(rng, count, radius)
    ids = rng.permutation(count * 3)[:count].astype(np.int64)
    split = int(count * in_base)
    with tempfile.TemporaryDirectory() as folder:
        index = PdqIndex.rebuild(folder, ids[:split], hashes[:split])
        index.add(ids[split:], hashes[split:])
        removed = ids[rng.random(count) < 0.1]
        index.remove(removed)
        keep = ~np.isin(ids, removed)
        queries = queries_for(rng, hashes, 12, radius)
        expected = brute_force_search(hashes[keep], ids[keep], queries, radius)
        assert index.search(queries, radius) == expected
        assert len(index) == int(keep.sum())


@pytest.mark.parametrize("rows", [1, 100, 4096, 10**6, 10**7, 10**8])
def test_every_plan_satisfies_the_pigeonhole_bound(rows: int) -> None:
    tables = layout.Tables.for_rows(rows)
    assert tables.valid()
    for radius in range(64):
        plan = probes.plan(tables, rows, radius)
        if plan is None:
            continue
        assert int((plan.thresholds + 1).sum()) >= radius + 1
        most = int(plan.thresholds.max())
        assert int(plan.mask_ends[most]) == sum(
            math.comb(tables.bucket_bits, f) for f in range(min(most, tables.bucket_bits) + 1)
        )


def test_the_ten_million_row_shape_is_exact(tmp_path: Path) -> None:
    """11 tables of 23 bits bucketed by 20, as at 10M rows, on a small set."""
    assert layout.Tables.for_rows(10**7) == layout.Tables(11, 23, 20)
    rng = np.random.default_rng(12)
    hashes = planted(rng, 3000, 31)
    ids = np.arange(3000, dtype=np.int64)
    queries = queries_for(rng, hashes, 60, 31)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(layout.Tables, "for_rows", classmethod(lambda cls, rows: cls(11, 23, 20)))
        patched.setattr(mih, "_scan_bias", math.inf)
        index = PdqIndex.rebuild(tmp_path, ids, hashes)
        for radius in (0, 15, 31, 47):
            expected = brute_force_search(hashes, ids, queries, radius)
            assert index.search(queries, radius) == expected


@pytest.mark.parametrize("rows", [12 * 10**6, 3 * 10**7, 10**8, 10**9])
def test_large_bases_take_the_shape_the_cost_model_prefers(rows: int) -> None:
    # Past 2**20 buckets the rule of thumb gives way to the cheapest shape by the model;
    # never one it expects to cost more than the rule's (20-bit buckets, 3-bit suffix).
    tables = layout.Tables.for_rows(rows)
    assert tables.valid()
    assert layout.RULE_BUCKET_BITS <= tables.bucket_bits <= layout.MAX_BUCKET_BITS
    rule = layout.Tables(11, 23, 20)
    assert probes._spend(tables, rows, 31)[1] <= probes._spend(rule, rows, 31)[1]
    if rows == 10**8:
        assert tables == layout.Tables(9, 28, 24)


def test_the_hundred_million_row_chunks_are_exact(tmp_path: Path) -> None:
    """9 tables of 28 bits, as at 100M rows (bucketed by 20 bits here, not 24: the 24-bit
    offsets take 604 MB), on a small set: 28-bit chunks straddling words, 8-bit suffixes."""
    rng = np.random.default_rng(13)
    hashes = planted(rng, 3000, 31)
    ids = np.arange(3000, dtype=np.int64)
    queries = queries_for(rng, hashes, 60, 31)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(layout.Tables, "for_rows", classmethod(lambda cls, rows: cls(9, 28, 20)))
        patched.setattr(mih, "_scan_bias", math.inf)
        index = PdqIndex.rebuild(tmp_path, ids, hashes)
        for radius in (0, 15, 31):
            expected = brute_force_search(hashes, ids, queries, radius)
            assert index.search(queries, radius) == expected


def test_every_match_found_at_the_usual_radius_with_full_buckets(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    prototype = rng.integers(0, 256, 32, dtype=np.uint8)
    hashes = np.array([flipped(prototype, int(b), rng) for b in rng.integers(0, 40, 3000)])
    hashes = np.concatenate([hashes, rng.integers(0, 256, (3000, 32), dtype=np.uint8)])
    ids = np.arange(len(hashes), dtype=np.int64)
    index = PdqIndex.rebuild(tmp_path, ids, hashes)
    queries = queries_for(rng, hashes, 40, 31)
    assert index.search(queries, 31) == brute_force_search(hashes, ids, queries, 31)


def test_many_matches_of_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # More matches than the kernels' first room (64 a query, without the 4096 floor) and
    # than ids read one by one.
    monkeypatch.setattr(mih, "_scan_bias", math.inf)
    monkeypatch.setattr(mih, "_MIN_ROOM", 0)
    rng = np.random.default_rng(16)
    prototype = rng.integers(0, 256, 32, dtype=np.uint8)
    hashes = np.array([flipped(prototype, int(b), rng) for b in rng.integers(0, 6, 400)])
    ids = rng.permutation(10_000)[:400].astype(np.int64)
    index = PdqIndex.rebuild(tmp_path, ids[:300], hashes[:300])
    index.add(ids[300:], hashes[300:])
    queries = np.stack([prototype, flipped(prototype, 20, rng)])
    expected = brute_force_search(hashes, ids, queries, 31)
    assert index.search(queries, 31) == expected
    assert len(expected[0]) == 400


def test_rows_are_stored_in_the_first_tables_bucket_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows sharing a bucket of table 0 sit side by side (by id within it); ids given out of
    # order are still found by id when replaced or removed.
    monkeypatch.setattr(mih, "_scan_bias", math.inf)
    rng = np.random.default_rng(21)
    hashes = planted(rng, 3000, 31)
    ids = rng.permutation(10**6)[:3000].astype(np.int64)
    index = PdqIndex.rebuild(tmp_path, ids, hashes)
    base = index._state.base
    keys = base.words[:, 0] & np.uint64((1 << base.tables.bucket_bits) - 1)
    assert (np.diff(keys.astype(np.int64)) >= 0).all()
    same = keys[1:] == keys[:-1]
    assert (base.ids[1:][same] > base.ids[:-1][same]).all()
    assert (np.diff(base.ids[base.by_id]) > 0).all()
    row = int(np.flatnonzero(base.ids == ids[5])[0])
    assert base.rows_of(np.array([ids[5], -7, 10**6 + 1])).tolist() == [row, -1, -1]
    index.add(ids[:10], hashes[10:20])  # replace ten hashes of the base
    index.remove(ids[20:30])
    hashes[:10] = hashes[10:20]
    live = np.r_[0:20, 30:3000]
    queries = queries_for(rng, hashes, 40, 31)
    expected = brute_force_search(hashes[live], ids[live], queries, 31)
    assert index.search(queries, 31) == expected
    index.compact()
    assert PdqIndex.open(tmp_path).search(queries, 31) == expected


# --------------------------------------------------------------------------- increments


def test_incremental_adds_equal_a_fresh_build(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    hashes = planted(rng, 9000, 31)
    ids = np.arange(1, 9001, dtype=np.int64)
    index = PdqIndex.open(tmp_path / "incremental")
    start = 0
    while start < len(ids):
        step = int(rng.integers(1, 900))
        index.add(ids[start : start + step], hashes[start : start + step])
        start += step
    fresh = PdqIndex.rebuild(tmp_path / "fresh", ids, hashes)
    queries = queries_for(rng, hashes, 30, 31)
    assert index.search(queries, 31) == fresh.search(queries, 31)
    assert len(index) == len(fresh) == 9000
    assert index.max_id == fresh.max_id == 9000
    manifest = json.loads((tmp_path / "incremental" / "manifest.json").read_text())
    assert manifest["base"] is not None  # the delta overflowed and merged at least once


def test_adding_a_live_id_replaces_its_hash(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    old, new = rng.integers(0, 256, (2, 32), dtype=np.uint8)
    index = PdqIndex.rebuild(tmp_path, [10], old[None])
    index.add([10], new[None])
    assert index.search(np.stack([old, new]), 0) == [[], [(10, 0)]]
    assert len(index) == 1
    generation = json.loads((tmp_path / "manifest.json").read_text())["generation"]
    index.add([10], new[None])  # same hash: nothing to write
    assert json.loads((tmp_path / "manifest.json").read_text())["generation"] == generation
    index.add([11, 11], np.stack([old, new]))  # within one call the last row wins
    assert index.search(old[None], 0) == [[]]
    assert index.search(new[None], 0) == [[(10, 0), (11, 0)]]


def test_remove_hides_ids_in_base_and_delta(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    index = PdqIndex.rebuild(tmp_path, np.arange(10), hashes[:10])
    index.add(np.arange(10, 20), hashes[10:])
    index.remove([2, 15, 999])
    assert len(index) == 18
    assert index.search(hashes[[2, 15, 3]], 0) == [[], [], [(3, 0)]]
    reopened = PdqIndex.open(tmp_path)
    assert reopened.search(hashes[[2, 15, 16]], 0) == [[], [], [(16, 0)]]
    assert reopened.max_id == 19  # removal does not lower it
    reopened.add([2], hashes[2:3])
    assert reopened.search(hashes[2:3], 0) == [[(2, 0)]]
    reopened.compact()
    assert PdqIndex.open(tmp_path).search(hashes[[2, 15]], 0) == [[(2, 0)], []]


def test_delta_merges_exactly_when_full(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    hashes = rng.integers(0, 256, (mih.MIN_DELTA + 1, 32), dtype=np.uint8)
    ids = np.arange(len(hashes), dtype=np.int64)
    index = PdqIndex.open(tmp_path)
    index.add(ids[:-1], hashes[:-1])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["base"] is None
    assert manifest["delta"]["rows"] == manifest["delta"]["capacity"] == mih.MIN_DELTA
    index.add(ids[-1:], hashes[-1:])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["base"]["rows"] == len(ids) and manifest["delta"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["lock", "manifest.json"]
        + [f"base-{manifest['generation']}.{part}.npy" for part in layout.BASE_PARTS]
    )
    queries = queries_for(rng, hashes, 10, 31)
    assert index.search(queries, 31) == brute_force_search(hashes, ids, queries, 31)


def test_many_removals_compact_away(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    hashes = rng.integers(0, 256, (6000, 32), dtype=np.uint8)
    ids = np.arange(6000, dtype=np.int64)
    index = PdqIndex.rebuild(tmp_path, ids, hashes)
    index.remove(ids[:5000])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["tombstones"] is None and manifest["base"]["rows"] == 1000
    assert index.search(hashes[[0, 5000]], 0) == [[], [(5000, 0)]]


# --------------------------------------------------------------------------- persistence


def test_round_trip_through_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    hashes = planted(rng, 500, 31)
    ids = np.arange(100, 600, dtype=np.int64)
    index = PdqIndex.rebuild(tmp_path, ids[:300], hashes[:300])
    index.add(ids[300:], hashes[300:])
    queries = queries_for(rng, hashes, 20, 31)
    before = index.search(queries, 31)
    del index
    reopened = PdqIndex.open(tmp_path)
    assert reopened.search(queries, 31) == before
    assert (len(reopened), reopened.max_id) == (500, 599)


def test_empty_index_and_empty_queries(tmp_path: Path) -> None:
    index = PdqIndex.open(tmp_path / "new" / "index")
    assert (len(index), index.max_id) == (0, -1)
    assert index.search(np.zeros((0, 32), np.uint8), 31) == []
    assert index.search(np.zeros((2, 32), np.uint8), 63) == [[], []]
    index.add(np.zeros(0, np.int64), np.zeros((0, 32), np.uint8))
    index.remove([1])
    index.add([1], np.zeros((1, 32), np.uint8))
    index.clear()
    assert (len(PdqIndex.open(tmp_path / "new" / "index")), index.max_id) == (0, -1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.search(np.zeros((1, 31), np.uint8), 3), "shape"),
        (lambda i: i.search(np.zeros((1, 32), np.int64), 3), "dtype"),
        (lambda i: i.search(np.zeros((1, 32), np.uint8), 64), "64"),
        (lambda i: i.search(np.zeros((1, 32), np.uint8), True), "True"),
        (lambda i: i.add([1, 2], np.zeros((1, 32), np.uint8)), "2 ids but 1 hashes"),
        (lambda i: i.add([-1], np.zeros((1, 32), np.uint8)), "negative"),
        (lambda i: i.remove([[1]]), "shape"),
    ],
)
def test_bad_input_is_a_user_error(tmp_path: Path, call: object, message: str) -> None:
    index = PdqIndex.open(tmp_path)
    with pytest.raises(UserError, match=message):
        call(index)  # type: ignore[operator]


def stocked(folder: Path) -> tuple[PdqIndex, Hashes]:
    rng = np.random.default_rng(10)
    hashes = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    index = PdqIndex.rebuild(folder, np.arange(30), hashes[:30])
    index.add(np.arange(30, 40), hashes[30:])
    index.remove([1])
    return index, hashes


def test_corrupt_manifest_is_reported(tmp_path: Path) -> None:
    stocked(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "amber-pdq-index", "vers')
    with pytest.raises(IndexCorruptError, match=r"manifest\.json") as caught:
        PdqIndex.open(tmp_path)
    assert caught.value.path == str(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "amber-pdq-index", "version": 4}))
    with pytest.raises(IndexCorruptError, match="generation"):
        PdqIndex.open(tmp_path)
    # A folder written by an older amber (format 3 kept postings for table 0, format 2 its
    # rows in id order): the matcher rebuilds it from the database.
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "amber-pdq-index", "version": 3}))
    with pytest.raises(IndexCorruptError, match="format version 3 is not 4"):
        PdqIndex.open(tmp_path)


@pytest.mark.parametrize("name", ["hashes", "postings", "offsets", "ids", "by_id"])
def test_truncated_array_is_reported_and_rebuild_recovers(tmp_path: Path, name: str) -> None:
    _, hashes = stocked(tmp_path)
    (path,) = tmp_path.glob(f"base-*.{name}.npy")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(IndexCorruptError, match=path.name):
        PdqIndex.open(tmp_path)
    rebuilt = PdqIndex.rebuild(tmp_path, np.arange(40), hashes)
    assert PdqIndex.open(tmp_path).search(hashes[:2], 0) == [[(0, 0)], [(1, 0)]]
    assert len(rebuilt) == 40


def test_swapped_or_missing_files_are_reported(tmp_path: Path) -> None:
    stocked(tmp_path)
    (delta,) = tmp_path.glob("delta-*.hashes.npy")
    np.save(delta, np.zeros((5, 32), np.uint8))
    with pytest.raises(IndexCorruptError, match="manifest expects"):
        PdqIndex.open(tmp_path)
    delta.unlink()
    with pytest.raises(IndexCorruptError, match=delta.name):
        PdqIndex.open(tmp_path)
    (tombstones,) = tmp_path.glob("tombstones-*.npy")
    np.save(tombstones, np.array([99], np.int64))
    with pytest.raises(IndexCorruptError):
        PdqIndex.open(tmp_path)


def all_ones_index(folder: Path, monkeypatch: pytest.MonkeyPatch) -> PdqIndex:
    """Five equal hashes, all bits set: every posting lands in each table's last bucket."""
    monkeypatch.setattr(mih, "_scan_bias", math.inf)
    return PdqIndex.rebuild(folder, np.arange(5), np.full((5, 32), 255, np.uint8))


def test_postings_out_of_range_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = all_ones_index(tmp_path, monkeypatch)
    (path,) = tmp_path.glob("base-*.postings.npy")
    postings = np.load(path, mmap_mode="r+")
    postings[:] = np.uint64(2**64 - 1)  # row 7 of 5
    postings.flush()
    with pytest.raises(IndexCorruptError, match=path.name) as caught:
        index.search(np.full((1, 32), 255, np.uint8), 1)  # probes tables 0 and 1
    assert caught.value.path == str(path)


def test_bucket_offsets_out_of_order_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = all_ones_index(tmp_path, monkeypatch)
    (path,) = tmp_path.glob("base-*.offsets.npy")
    offsets = np.load(path, mmap_mode="r+")
    offsets[:, -2] = 9  # the last bucket would start after it ends
    offsets.flush()
    with pytest.raises(IndexCorruptError, match=path.name):
        index.search(np.full((1, 32), 255, np.uint8), 0)


def test_a_crash_mid_write_leaves_the_old_state(tmp_path: Path) -> None:
    index, hashes = stocked(tmp_path)
    queries = hashes[[0, 1, 35]]
    before = index.search(queries, 0)
    # What a writer that died before replacing the manifest leaves behind: rows past the
    # delta's end, a half-written base of the next generation and temporaries.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (delta,) = tmp_path.glob("delta-*.ids.npy")
    with open(delta, "r+b") as handle:
        handle.seek(np.load(delta, mmap_mode="r").offset + 8 * manifest["delta"]["rows"])
        handle.write(np.array([7777], "<i8").tobytes())
    leftover = tmp_path / f"base-{manifest['generation'] + 1}.ids.npy"
    leftover.write_bytes(b"\x93NUMPY half")
    (tmp_path / "manifest.json.tmp").write_text("{")
    reopened = PdqIndex.open(tmp_path)
    assert reopened.search(queries, 0) == before
    assert len(reopened) == 39
    reopened.add([50], hashes[:1])  # the next write overwrites the stray rows and cleans up
    assert not leftover.exists() and not (tmp_path / "manifest.json.tmp").exists()
    assert PdqIndex.open(tmp_path).search(hashes[:1], 0) == [[(0, 0), (50, 0)]]


CHILD = """
import sys
import numpy as np
from amber.index import PdqIndex

index = PdqIndex.open(sys.argv[1])
hashes = np.random.default_rng(11).integers(0, 256, (6000, 32), dtype=np.uint8)
print("ready", flush=True)
for start in range(0, 6000, 100):
    index.add(np.arange(start, start + 100), hashes[start : start + 100])
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.5, 0.9, 1.0])
def test_a_killed_writer_leaves_a_whole_state(tmp_path: Path, delay: float) -> None:
    hashes = np.random.default_rng(11).integers(0, 256, (6000, 32), dtype=np.uint8)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    index = PdqIndex.open(tmp_path)
    live = len(index)
    assert live % 100 == 0  # every add is all or nothing
    assert index.max_id == live - 1
    found = index.search(hashes, 0)
    assert found[:live] == [[(i, 0)] for i in range(live)]
    assert found[live:] == [[] for _ in range(6000 - live)]


# --------------------------------------------------------------------------- sharing


def found_ids(index: PdqIndex, hashes: Hashes) -> list[list[int]]:
    return [[id_ for id_, _ in hits] for hits in index.search(hashes, 0)]


def test_a_stale_writer_applies_its_change_to_the_latest_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mih, "MIN_DELTA", 8)
    hashes = np.random.default_rng(13).integers(0, 256, (40, 32), dtype=np.uint8)
    first, second = PdqIndex.open(tmp_path), PdqIndex.open(tmp_path)
    first.add([1, 2, 3], hashes[1:4])
    second.add([4], hashes[4:5])  # opened before the first wrote: must not drop 1..3
    second.remove([2])
    first.add([5], hashes[5:6])  # does not know 4 was added and 2 removed
    first.add(np.arange(6, 20), hashes[6:20])  # overflows the delta: a merge
    second.add([3], hashes[30:31])  # replaces 3, on top of the merged base
    reopened = PdqIndex.open(tmp_path)
    assert found_ids(reopened, hashes[[1, 2, 3, 4, 30]]) == [[1], [], [], [4], [3]]
    assert found_ids(reopened, hashes[5:20]) == [[i] for i in range(5, 20)]
    assert len(reopened) == len(first) == len(second) == 18
    assert reopened.max_id == first.max_id == second.max_id == 19


def test_refresh_picks_up_another_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mih, "MIN_DELTA", 8)
    hashes = np.random.default_rng(14).integers(0, 256, (30, 32), dtype=np.uint8)
    writer = PdqIndex.rebuild(tmp_path, np.arange(10), hashes[:10])
    reader = PdqIndex.open(tmp_path)
    assert reader.refresh() is False  # nothing changed: one small read
    writer.add([10], hashes[10:11])
    writer.remove([0])
    assert found_ids(reader, hashes[[0, 10]]) == [[0], []]  # as of its open
    assert reader.refresh() is True
    assert found_ids(reader, hashes[[0, 10]]) == [[], [10]]
    assert (len(reader), reader.max_id) == (10, 10)
    assert reader.refresh() is False
    # A merge deletes the files the reader maps; its mapping stays readable (Linux keeps
    # an unlinked file until its last mapping goes) until it refreshes.
    writer.add(np.arange(11, 30), hashes[11:30])
    assert not (tmp_path / layout.base_file(reader.generation - 2, "hashes")).exists()
    assert found_ids(reader, hashes[[1, 20]]) == [[1], []]
    assert reader.refresh() is True
    assert found_ids(reader, hashes[[1, 20]]) == [[1], [20]]


SHARED_HASHES = 3000

WRITER = """
import sys
import numpy as np
from amber.index import PdqIndex, mih

mih.MIN_DELTA = 64  # merge often, while the other writers append
folder, first, count, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hashes = np.random.default_rng(15).integers(0, 256, (total, 32), dtype=np.uint8)
index = PdqIndex.open(folder)
for start in range(first, first + count, 20):
    ids = np.arange(start, start + 20)
    index.add(ids, hashes[ids])
    index.remove(ids[:2])
"""

READER = """
import sys
import numpy as np
from pathlib import Path
from amber.index import PdqIndex

folder, stop, total = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
hashes = np.random.default_rng(15).integers(0, 256, (total, 32), dtype=np.uint8)
index = PdqIndex.open(folder)
changes = 0
while not stop.exists():
    changes += index.refresh()
    for number, hits in enumerate(index.search(hashes[::7], 0)):
        assert all(id_ == number * 7 and distance == 0 for id_, distance in hits), hits
print(changes)
"""


@pytest.mark.slow
def test_processes_sharing_a_folder_lose_no_write(tmp_path: Path) -> None:
    folder, stop = tmp_path / "index", tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(folder), str(stop), str(SHARED_HASHES)],
        stdout=subprocess.PIPE,
        text=True,
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), str(first), "200", str(SHARED_HASHES)]
        )
        for first in (0, 1000, 2000)
    ]
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0, 0]
    stop.touch()
    output, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(output) > 0  # it searched while others wrote
    hashes = np.random.default_rng(15).integers(0, 256, (SHARED_HASHES, 32), dtype=np.uint8)
    live = [i for first in (0, 1000, 2000) for i in range(first, first + 200) if i % 20 >= 2]
    index = PdqIndex.open(folder)
    assert len(index) == len(live) == 540
    assert found_ids(index, hashes[live]) == [[i] for i in live]
    assert index.max_id == 2199
    removed = [i for first in (0, 1000, 2000) for i in range(first, first + 200) if i % 20 < 2]
    assert found_ids(index, hashes[removed]) == [[] for _ in removed]
