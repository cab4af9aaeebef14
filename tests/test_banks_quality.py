"""Weak hashes when banking (PDQ quality below the policy's minimum), and the nearest bank
entries of a post's values whether or not they match (for ``amber explain``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from amber.cli import app
from amber.engine import Engine
from amber.errors import UserError
from amber.hashing import Hasher, MediaHashes
from amber.signals import Role
from amber.synthetic import photo


def _flat(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (200, 150), (90, 90, 90)).save(path)  # PDQ quality 0
    return path


def test_weak_hashes_are_reported_and_refused_on_request(
    engine: Engine, tmp_path: Path, photo_file: Callable[..., Path]
) -> None:
    flat, good = _flat(tmp_path / "flat.png"), photo_file(1)
    engine.banks.create("known")
    result = engine.banks.add_files("known", [flat, good])
    assert result.added == [str(flat), str(good)] and result.refused == []
    [weak] = result.weak
    assert (weak.path, weak.signal_type, weak.quality, weak.minimum) == (str(flat), "pdq", 0, 50)

    engine.banks.create("strict")
    result = engine.banks.add_files("strict", [flat, good], min_quality=50)
    assert result.added == [str(good)] and result.weak == []
    assert [(w.path, w.signal_type, w.quality) for w in result.refused] == [(str(flat), "pdq", 0)]
    assert engine.banks.get("strict").entries == 1
    with pytest.raises(UserError, match="min_quality 101 is out of range"):
        engine.banks.add_files("strict", [good], min_quality=101)


def test_bank_add_warns_about_weak_hashes_and_refuses_them_with_min_quality(
    database: str, tmp_path: Path, photo_file: Callable[..., Path]
) -> None:
    runner = CliRunner()
    env = {"AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault"), "COLUMNS": "200"}
    flat, good = _flat(tmp_path / "flat.png"), photo_file(1)
    assert runner.invoke(app, ["bank", "create", "known"], env=env).exit_code == 0

    added = runner.invoke(app, ["bank", "add", "known", str(flat), str(good)], env=env)
    assert added.exit_code == 0, added.stderr
    assert f"warning: {flat}: pdq quality 0 is below the policy's minimum 50" in added.stderr
    assert "added 2 entries" in added.stderr

    refused = runner.invoke(
        app,
        ["bank", "add", "known", "--min-quality", "60", str(_flat(tmp_path / "f2.png"))],
        env=env,
    )
    assert refused.exit_code == 0, refused.stderr
    assert (
        "refused" in refused.stderr and "pdq quality 0 is below --min-quality 60" in refused.stderr
    )
    assert "added 0 entries" in refused.stderr and "1 refused as too weak" in refused.stderr

    bad = runner.invoke(app, ["bank", "add", "known", "--min-quality", "101", str(good)], env=env)
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr


def _hashes(engine: Engine, path: Path) -> MediaHashes:
    result = Hasher(engine.media_signals, Role.query).one(str(path))
    assert isinstance(result, MediaHashes)
    return result


def test_nearest_gives_close_entries_with_distances_even_when_none_matches(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    original = photo_file(5)
    smaller = photo_file(5, name="smaller.png", image=photo(5).resize((400, 300)))
    engine.banks.create("exact-only", threshold=0)
    engine.banks.add_files("exact-only", [original])
    query = _hashes(engine, smaller)
    # PDQ's threshold of 0 lets no near copy match; the keypoints (orb), which that
    # threshold does not govern, still find the resized copy.
    assert [m.signal_type for m in engine.matcher.match([query.values])] == ["orb"]

    near = [
        n
        for n in engine.matcher.nearest([query.values], k=3)
        if n.query.variant == "original" and n.entry_variant == "original"
    ]
    [pdq] = near
    assert pdq.signal_type == "pdq" and pdq.bank == "exact-only"
    assert pdq.entry_source == str(original) and pdq.threshold == 0
    assert 0 < pdq.distance <= 31 and pdq.matches is False
    assert pdq.entry_value == _hashes(engine, original).original("pdq").value  # type: ignore[union-attr]

    same = engine.matcher.nearest([_hashes(engine, original).values], k=3)
    exact = {
        n.signal_type: n
        for n in same
        if n.query.variant == "original" and n.entry_variant == "original"
    }
    assert exact["sha256"].distance == 0 and exact["sha256"].matches
    assert exact["pdq"].distance == 0 and exact["pdq"].matches
    with pytest.raises(UserError, match="k 0 is not"):
        engine.matcher.nearest([query.values], k=0)


def test_nearest_keeps_the_k_closest_per_value(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    base = photo(6)
    copies = [
        photo_file(6, name=f"c{n}.jpg", image=base.resize((640 - 40 * n, 480 - 30 * n)), quality=70)
        for n in range(4)
    ]
    engine.banks.create("copies")
    assert len(engine.banks.add_files("copies", copies).added) == 4
    query = _hashes(engine, photo_file(6))
    near = [
        n
        for n in engine.matcher.nearest([query.values], k=2)
        if n.signal_type == "pdq" and n.query.variant == "original"
    ]
    assert len(near) == 2 and near[0].distance <= near[1].distance
    all_four = [
        n
        for n in engine.matcher.nearest([query.values], k=4)
        if n.signal_type == "pdq" and n.query.variant == "original"
    ]
    assert sorted(n.distance for n in all_four)[:2] == [n.distance for n in near]
