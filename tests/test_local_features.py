"""Local features (ORB): copies moved in the frame are caught, with where they lie, and
different photos are not confused; on both databases, through the engine as a scan runs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageOps

from amber.engine import Engine, ScanResult
from amber.index.binary import BinaryIndex
from amber.index.signal import BruteForceIndex
from amber.posts import read_input
from amber.signals.base import Content, Role
from amber.signals.contract import check_signal_type
from amber.signals.local import OrbSignal, Region
from amber.store.tables import entry_signals, media_signals
from amber.synthetic import filmed_at_an_angle, photo
from conftest import CliResult

ORB = OrbSignal()
BANKED = (3, 5, 8)
#: Photos never banked: the false-match probes are made of them.
OTHERS = (40, 41, 42, 43, 44, 45)


def corner(image: Image.Image, share: float, where: str) -> Image.Image:
    w, h = image.size
    cw, ch = int(w * share), int(h * share)
    x = 0 if "l" in where else w - cw
    y = 0 if "t" in where else h - ch
    return image.crop((x, y, x + cw, y + ch))


def collage(tiles: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (800, 600), "white")
    for n, tile in enumerate(tiles):
        out.paste(tile.resize((396, 296)), ((n % 2) * 402, (n // 2) * 302))
    return out


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    out = Image.new("RGB", (1000, 380), "black")
    out.paste(left.resize((495, 380)), (0, 0))
    out.paste(right.resize((495, 380)), (505, 0))
    return out


def stickers(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    for n, (x, y) in enumerate([(0.1, 0.1), (0.6, 0.2), (0.3, 0.6), (0.75, 0.7)]):
        r = int(min(w, h) * 0.13)
        box = (int(x * w), int(y * h), int(x * w) + r, int(y * h) + r)
        draw.ellipse(box, fill=("#ffd21f", "#ff4f9a", "#3fd0ff", "#7cff5b")[n])
    return out


def banner(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, int(h * 0.4), w, int(h * 0.6)), fill="black")
    draw.text((20, int(h * 0.45)), "THEY DID IT AGAIN - SHARE BEFORE IT IS GONE", fill="white")
    return out


def edits(seed: int) -> dict[str, Image.Image]:
    """The moved-in-the-frame copies of banked photo ``seed`` (none of which PDQ catches
    but the stickers and the banner, which it may)."""
    original = photo(seed, 800, 600)
    distractors = [photo(s, 800, 600) for s in OTHERS[:3]]
    return {
        "corner-80": corner(original, 0.8, "tl"),
        "corner-70": corner(original, 0.7, "br"),
        "corner-60": corner(original, 0.6, "tr"),
        "corner-50": corner(original, 0.5, "bl"),
        "mirror-crop-70": ImageOps.mirror(corner(original, 0.7, "tl")),
        "perspective": filmed_at_an_angle(original),
        "collage-tile": collage([distractors[0], original, *distractors[1:]]),
        "side-by-side": side_by_side(distractors[0], original),
        "stickers": stickers(original),
        "banner": banner(original),
    }


@pytest.fixture
def banked(engine: Engine, tmp_path: Path) -> Engine:
    engine.banks.create("known", action="remove", label="execution-photo")
    files = []
    for seed in BANKED:
        path = tmp_path / f"banked-{seed}.jpg"
        photo(seed, 800, 600).save(path, quality=92)
        files.append(path)
    engine.banks.add_files("known", files)
    return engine


def _scan(engine: Engine, tmp_path: Path, images: dict[str, Image.Image]) -> dict[str, ScanResult]:
    lines = []
    for name, image in images.items():
        path = tmp_path / "posts" / f"{name}.jpg"
        path.parent.mkdir(exist_ok=True)
        image.save(path, quality=88)
        lines.append(f'{{"id": "{name}", "media": [{{"path": "{path}"}}]}}\n')
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(lines), encoding="utf-8")
    return {r.post.id: r for r in engine.scan(read_input(posts)) if isinstance(r, ScanResult)}


def test_copies_moved_in_the_frame_match_their_own_photo_and_say_where(
    banked: Engine, tmp_path: Path
) -> None:
    entries = {e.source.rsplit("/", 1)[-1]: e.id for e in banked.banks.entries("known")}
    images = {f"{seed}:{edit}": img for seed in BANKED for edit, img in edits(seed).items()}
    results = _scan(banked, tmp_path, images)
    missed = []
    for name, result in results.items():
        seed = int(name.split(":")[0])
        found = {(r.signal, r.entry) for r in result.outcome.reasons}
        if not any(entry == entries[f"banked-{seed}.jpg"] for _, entry in found):
            missed.append(name)
        wrong = {e for _, e in found} - {entries[f"banked-{seed}.jpg"]}
        assert not wrong, f"{name} matched another banked photo: {found}"
    assert not missed, f"not caught: {missed}"
    # Where it lies: a tile of the collage (top right), and the part a corner crop shows.
    [tile] = [r for r in results["3:collage-tile"].outcome.reasons if r.signal == "orb"]
    post = tile.region["post"]  # type: ignore[index]
    assert post[0] > 0.45 and post[2] > 0.95 and post[1] < 0.05 and post[3] < 0.55
    assert tile.region["inliers"] >= OrbSignal.MIN_INLIERS  # type: ignore[index]
    assert "keypoint pairs agree" in (tile.detail or "")
    [crop] = [r for r in results["5:corner-60"].outcome.reasons if r.signal == "orb"]
    entry = crop.region["entry"]  # type: ignore[index]
    assert entry[0] == pytest.approx(0.4, abs=0.05) and entry[3] == pytest.approx(0.6, abs=0.05)
    [mirrored] = [r for r in results["8:mirror-crop-70"].outcome.reasons if r.signal == "orb"]
    assert "via mirror" in (mirrored.detail or "")


def test_different_photos_never_match(banked: Engine, tmp_path: Path) -> None:
    """Other photos as they are and edited, collages of other photos, the same scene kind
    (the generator's), a shared logo over different photos, and near-uniform images."""
    probes: dict[str, Image.Image] = {}
    for seed in OTHERS:
        other = photo(seed, 800, 600)
        probes[f"{seed}"] = other
        probes[f"{seed}:corner-60"] = corner(other, 0.6, "tl")
        probes[f"{seed}:perspective"] = filmed_at_an_angle(other)
    probes["collage"] = collage([photo(s, 800, 600) for s in OTHERS[:4]])
    logo = photo(3, 800, 600).crop((40, 40, 160, 140))  # a patch of a banked photo
    for seed in OTHERS[:3]:
        marked = photo(seed, 800, 600)
        marked.paste(logo, (660, 440))
        probes[f"{seed}:logo"] = marked
    probes["flat"] = Image.new("RGB", (800, 600), (120, 130, 140))
    noisy = np.random.default_rng(1).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    probes["noise"] = Image.fromarray(noisy)
    results = _scan(banked, tmp_path, probes)
    matched = {
        k: [r.signal for r in v.outcome.reasons] for k, v in results.items() if v.outcome.reasons
    }
    assert matched == {}


def test_local_features_are_a_second_look_only(banked: Engine, tmp_path: Path) -> None:
    """A copy PDQ catches is not searched again by keypoints; its keypoints are not stored."""
    results = _scan(banked, tmp_path, {"copy": photo(3, 800, 600).resize((400, 300))})
    assert {r.signal for r in results["copy"].outcome.reasons} == {"pdq"}
    assert banked.decisions.get("copy").verdict.value == "remove"
    with banked.db.connect() as conn:
        stored = set(conn.execute(sa.select(media_signals.c.signal_type)).scalars())
    assert "pdq" in stored and "orb" not in stored


def test_the_policy_may_ask_for_keypoints_where_pdq_matched_too(
    database: str, tmp_path: Path
) -> None:
    from amber import open_engine
    from amber.policy.rules import DEFAULT_POLICY

    default = (Path(__import__("amber").__file__).parent / DEFAULT_POLICY).read_text()
    assert default.count("\nalways = false\n") == 1
    policy = tmp_path / "always.toml"
    policy.write_text(default.replace("\nalways = false\n", "\nalways = true\n"))
    with open_engine(db=database, vault=tmp_path / "vault", policy=policy) as engine:
        assert engine.matcher.always == {"orb"}
        engine.banks.create("known")
        engine.banks.add_files("known", [_saved(tmp_path, 3)])
        results = _scan(engine, tmp_path, {"copy": photo(3, 800, 600).resize((400, 300))})
        reasons = results["copy"].outcome.reasons
        assert {r.signal for r in reasons} == {"pdq", "orb"}
        [orb] = [r for r in reasons if r.signal == "orb"]
        assert orb.region["inliers"] >= OrbSignal.MIN_INLIERS  # type: ignore[index]


def test_orb_keeps_the_signal_contract(tmp_path: Path) -> None:
    check_signal_type(ORB, workdir=tmp_path)


def test_values_name_what_is_wrong() -> None:
    from amber.errors import SignalValueError

    for text in ("f" * 64, "f" * 64 + ":10000,1", "g" * 64 + ":1,1", "f" * 63 + ":1,1"):
        with pytest.raises(SignalValueError, match="64 hex digits"):
            ORB.validate(text)


def test_flat_images_have_no_keypoints_and_bank_side_keeps_one_view() -> None:
    flat = Image.new("RGB", (400, 300), (90, 90, 90))
    assert ORB.compute(Content(image=flat), role=Role.query) == []
    values = ORB.compute(Content(image=photo(3, 640, 480)), role=Role.bank)
    assert 100 < len(values) <= 500 and {v.variant for v in values} == {"original"}
    query = ORB.compute(Content(image=photo(3, 640, 480)), role=Role.query)
    assert {v.variant for v in query} == {"keypoint", "mirror"}


def test_verify_reports_regions_and_refuses_a_mirror_homography() -> None:
    bank = {v.value for v in ORB.compute(Content(image=photo(5, 800, 600)), role=Role.bank)}
    query = ORB.compute(Content(image=corner(photo(5, 800, 600), 0.5, "br")), role=Role.query)
    pairs = [
        (q.value, b, ORB.distance(q.value, b))
        for q in query
        if q.variant == "keypoint"
        for b in bank
        if ORB.distance(q.value, b) <= 40
    ]
    found = ORB.verify(pairs)
    assert found is not None and found.inliers >= OrbSignal.MIN_INLIERS
    assert found.entry.x0 == pytest.approx(0.5, abs=0.05) and found.entry.y0 == pytest.approx(
        0.5, abs=0.05
    )
    assert found.post == Region(0.0, 0.0, 1.0, 1.0)
    # The same pairs with the query's x mirrored fit only a mirroring homography: refused.
    flipped = [(_mirror_x(q), b, d) for q, b, d in pairs]
    assert ORB.verify(flipped) is None
    assert ORB.verify(pairs[:10]) is None  # too few pairs


def _mirror_x(value: str) -> str:
    descriptor, _, place = value.partition(":")
    x, _, y = place.partition(",")
    return f"{descriptor}:{9999 - int(x)},{y}"


@pytest.mark.parametrize("rows", [2_000, 60_000])
def test_index_gives_the_nearest_as_brute_force(rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat below ``FLAT_LIMIT`` rows (exact), clustered above it (approximate: most)."""
    rng = np.random.default_rng(rows)
    codes = rng.integers(0, 256, (rows, 32), dtype=np.uint8)
    values = [f"{c.tobytes().hex()}:{n % 9999},{n % 7777}" for n, c in enumerate(codes)]
    index = BinaryIndex(ORB)
    index.add(list(range(rows)), values)
    # Queries: held values with a few bits flipped.
    picks = rng.choice(rows, 50, replace=False)
    queries = []
    for p in picks:
        code = bytearray(codes[p].tobytes())
        for bit in rng.choice(256, 6, replace=False):
            code[bit // 8] ^= 1 << (bit % 8)
        queries.append(f"{bytes(code).hex()}:1,1")
    found = index.search(queries, 64)
    if rows <= 50_000:
        reference = BruteForceIndex(ORB)
        reference.add(list(range(rows)), values)
        assert [[d for _, d in h] for h in found] == [
            [d for _, d in h][:8] for h in reference.search(queries, 64)
        ]
    hits = sum(any(row == p for row, _ in h) for p, h in zip(picks, found, strict=True))
    # Uniformly random codes are the cells' worst case (no clusters to find): at the
    # default 4 cells a keypoint most are found, at 16 nearly all.
    assert hits >= (50 if rows <= 50_000 else 35)
    if rows > 50_000:
        index.nprobe = 16
        wider = index.search(queries, 64)
        more = sum(any(row == p for row, _ in h) for p, h in zip(picks, wider, strict=True))
        assert more >= max(hits, 45)
    index.remove([int(p) for p in picks])
    assert not any(row in set(picks.tolist()) for h in index.search(queries, 64) for row, _ in h)


def test_bank_files_carry_an_entry_keypoints_in_one_cell(banked: Engine) -> None:
    out = io.StringIO()
    banked.banks.export_csv("known", out)
    rows = [r for r in csv.reader(io.StringIO(out.getvalue())) if r and r[0] == "orb"]
    assert len(rows) == len(BANKED)
    assert all(100 < len(r[1].split()) <= 500 for r in rows)
    banked.banks.create("copy")
    banked.banks.import_csv("copy", io.StringIO(out.getvalue()), source="copy")
    assert sorted(len(ORB.parse(r[1])) for r in rows) == sorted(
        sum(1 for v in e.values if v.signal_type == "orb") for e in banked.banks.entries("copy")
    )


def test_imported_keypoints_are_mapped_to_their_entries(banked: Engine, tmp_path: Path) -> None:
    """A bulk import hands its rows to the index without reading them back; the matcher
    still learns their entries, so a match against them reads only the shortlist's rows."""
    out = io.StringIO()
    banked.banks.export_csv("known", out)
    banked.banks.create("copy")
    banked.banks.import_csv("copy", io.StringIO(out.getvalue()), source="copy")
    with banked.db.connect() as conn:
        rows = conn.execute(
            sa.select(entry_signals.c.id, entry_signals.c.entry_id).where(
                entry_signals.c.signal_type == "orb"
            )
        ).all()
    ids = np.array([r.id for r in rows])
    known = banked.matcher.row_entries["orb"].lookup(ids)
    assert known.tolist() == [r.entry_id for r in rows]
    copies = {e.id for e in banked.banks.entries("copy")}
    results = _scan(banked, tmp_path, {"crop": corner(photo(5, 800, 600), 0.6, "bl")})
    assert {r.bank for r in results["crop"].outcome.reasons} == {"known", "copy"}
    assert copies & {r.entry for r in results["crop"].outcome.reasons}


def test_an_index_behind_many_keypoint_rows_syncs_without_reading_them(banked: Engine) -> None:
    """Each matching process asks every second for each index's rows above the newest it
    holds; when other types' rows lie above it (a bank of keypoints only: PDQ's index
    holds nothing), the query must not read them all."""
    out = io.StringIO()
    banked.banks.export_csv("known", out)
    only_keypoints = "".join(
        line for line in out.getvalue().splitlines(keepends=True) if not line.startswith("pdq")
    )
    banked.banks.create("keypoints")
    banked.banks.import_csv("keypoints", io.StringIO(only_keypoints), source="keypoints")
    names = {i["name"] for i in sa.inspect(banked.db).get_indexes("entry_signals")}
    assert "ix_entry_signals_type_id" in names
    asked: list[tuple[str, object]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "FROM entry_signals" in statement and "entry_signals.id >" in statement:
            asked.append((statement, parameters))

    sa.event.listen(banked.db, "before_cursor_execute", keep)
    try:
        banked.matcher.sync()
    finally:
        sa.event.remove(banked.db, "before_cursor_execute", keep)
    assert len(asked) >= 2  # one a PDQ-sharing and one a keypoint index at least
    if banked.db.dialect.name != "sqlite":
        return  # the plan is SQLite's to show here; PostgreSQL's planner sees few rows
    with banked.db.connect() as conn:
        for statement, parameters in asked:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            text = " ".join(str(row[-1]) for row in plan)
            assert "ix_entry_signals_type_id" in text, text


def test_a_bank_sets_how_many_keypoints_must_agree(banked: Engine, tmp_path: Path) -> None:
    strict = banked.banks.create("strict", min_inliers=400)
    assert strict.to_json()["min_inliers"] == 400
    banked.banks.add_files("strict", [tmp_path / "banked-3.jpg"])
    results = _scan(banked, tmp_path, {"crop": corner(photo(3, 800, 600), 0.6, "tr")})
    assert {r.bank for r in results["crop"].outcome.reasons} == {"known"}
    banked.banks.update("strict", min_inliers=16)
    results = _scan(banked, tmp_path, {"crop-2": corner(photo(3, 800, 600), 0.6, "tr")})
    assert {r.bank for r in results["crop-2"].outcome.reasons} == {"known", "strict"}
    from amber.errors import UserError

    for wrong in (7, 501, True, "20"):
        with pytest.raises(UserError, match="min_inliers"):
            banked.banks.update("strict", min_inliers=wrong)  # type: ignore[arg-type]


def test_the_command_line_sets_a_bank_minimum(amber_cli: Callable[..., CliResult]) -> None:
    created = amber_cli("bank", "create", "crops", "--min-inliers", "40")
    assert created.returncode == 0 and "min inliers 40" in created.stderr
    listed = amber_cli("bank", "list", "--format", "jsonl")
    assert json.loads(listed.stdout.splitlines()[0])["min_inliers"] == 40
    refused = amber_cli("bank", "create", "loose", "--min-inliers", "3")
    assert refused.returncode != 0 and "--min-inliers" in refused.stderr


def test_explain_counts_keypoints_and_gives_the_region(banked: Engine, tmp_path: Path) -> None:
    path = tmp_path / "crop.jpg"
    corner(photo(3, 800, 600), 0.6, "tr").save(path, quality=90)
    [explained] = list(banked.explain_file(path))
    data = explained.to_json()  # type: ignore[union-attr]
    orb = [v for v in data["media"][0]["values"] if v["signal_type"] == "orb"]
    assert {v["variant"] for v in orb} == {"keypoint", "mirror"}
    assert all(v["value"].endswith(" keypoints") for v in orb)
    [reason] = [r for r in data["reasons"] if r["signal"] == "orb"]
    assert reason["region"]["inliers"] >= OrbSignal.MIN_INLIERS
    assert reason["region"]["entry"][0] == pytest.approx(0.4, abs=0.05)


def test_retired_entries_with_more_votes_do_not_crowd_out_a_live_one(
    engine: Engine, tmp_path: Path
) -> None:
    """Keypoint hits are counted per entry before any row is read, and only the
    ``SHORTLIST`` entries with most votes are verified: entries of a disabled bank, or
    disabled for now, must not take those places from a weaker live one."""
    from datetime import UTC, datetime, timedelta

    from amber.matching import SHORTLIST

    original = photo(3, 800, 600)
    engine.banks.create("retired")
    copies = []
    for n in range(2 * SHORTLIST + 2):  # more than one batch of the activity check
        path = tmp_path / f"retired-{n}.jpg"
        original.save(path, quality=95 - n)
        copies.append(path)
    engine.banks.add_files("retired", copies)
    engine.banks.update("retired", enabled=False)
    engine.banks.create("paused")
    paused = tmp_path / "paused.png"
    original.save(paused)
    engine.banks.add_files("paused", [paused])
    [entry] = engine.banks.entries("paused")
    later = datetime.now(UTC) + timedelta(days=1)
    engine.banks.update_entry("paused", entry.id, disabled_until=later)
    engine.banks.create("live")
    weak = tmp_path / "weak.jpg"
    original.resize((400, 300)).save(weak, quality=60)  # fewer keypoints agree with a crop
    engine.banks.add_files("live", [weak])
    results = _scan(engine, tmp_path, {"crop": corner(original, 0.6, "tr")})
    assert {(r.signal, r.bank) for r in results["crop"].outcome.reasons} == {("orb", "live")}
    engine.banks.update("retired", enabled=True)
    results = _scan(engine, tmp_path, {"crop-2": corner(original, 0.6, "tr")})
    banks = {r.bank for r in results["crop-2"].outcome.reasons}
    assert "retired" in banks and "paused" not in banks


def test_only_the_shortlisted_photos_keypoint_rows_are_read(banked: Engine, tmp_path: Path) -> None:
    """A query image's keypoints have chance neighbours in many banked photos: they are
    counted per entry from the index, and the database is asked only for the rows of the
    entries worth verifying."""
    banked.banks.add_files("known", [_saved(tmp_path, seed) for seed in range(60, 90)])
    asked: list[int] = []

    def count(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "FROM entry_signals JOIN bank_entries" in statement:
            asked.append(len(parameters) if isinstance(parameters, tuple | list | dict) else 0)

    sa.event.listen(banked.db, "before_cursor_execute", count)
    try:
        results = _scan(banked, tmp_path, {"crop": corner(photo(5, 800, 600), 0.6, "bl")})
    finally:
        sa.event.remove(banked.db, "before_cursor_execute", count)
    assert {r.signal for r in results["crop"].outcome.reasons} == {"orb"}
    orb = banked.matcher.indexes["orb"]
    query = ORB.compute(Content(image=corner(photo(5, 800, 600), 0.6, "bl").convert("RGB")))
    every = {
        row
        for hits in orb.search([v.value for v in query], ORB.default_threshold)
        for row, _ in hits
    }
    entries = banked.matcher.row_entries["orb"].lookup(np.array(sorted(every)))
    assert len(set(entries.tolist())) > 2 * 4, "the test needs chance hits in many photos"
    assert asked and max(asked) < len(every) / 2


def _saved(tmp_path: Path, seed: int) -> Path:
    path = tmp_path / f"other-{seed}.jpg"
    photo(seed, 800, 600).save(path, quality=90)
    return path


def test_row_entries_answer_for_the_rows_they_were_given_only() -> None:
    from amber.matching import RowEntries

    runs = RowEntries()
    runs.add([10, 11, 12, 14, 15], [1, 1, 1, 2, 2])
    runs.add([3, 4], [7, 7])  # an earlier range given later
    runs.add([20, 21, 22], [2, 3, 3])
    assert len(runs) == 5
    found = runs.lookup(np.array([3, 4, 5, 10, 12, 13, 14, 15, 16, 20, 21, 22, 23]))
    assert found.tolist() == [7, 7, -1, 1, 1, -1, 2, 2, -1, 2, 3, 3, -1]
    runs.clear()
    assert runs.lookup(np.array([10])).tolist() == [-1]


def test_the_policy_sets_how_many_cells_each_keypoint_reads(database: str, tmp_path: Path) -> None:
    from amber import open_engine
    from amber.policy.rules import DEFAULT_POLICY

    default = (Path(__import__("amber").__file__).parent / DEFAULT_POLICY).read_text()
    assert "[signals.orb]" in default and default.count("\ncells = 4\n") == 1
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        assert engine.policy.orb_cells == 4
        assert engine.matcher.indexes["orb"].nprobe == 4  # type: ignore[attr-defined]
    policy = tmp_path / "thorough.toml"
    policy.write_text(default.replace("\ncells = 4\n", "\ncells = 16\n"))
    with open_engine(db=database, vault=tmp_path / "vault", policy=policy) as engine:
        assert engine.matcher.indexes["orb"].nprobe == 16  # type: ignore[attr-defined]
        engine.banks.create("known")
        engine.banks.add_files("known", [_saved(tmp_path, 3)])
        results = _scan(engine, tmp_path, {"crop": corner(photo(3, 800, 600), 0.7, "br")})
        assert {r.signal for r in results["crop"].outcome.reasons} == {"orb"}
