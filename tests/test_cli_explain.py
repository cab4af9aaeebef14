"""``amber explain`` and ``Engine.explain``: why a post got (or would get) its verdict,
for a banked photo's copy, an unrelated photo, a copy of a weak bank entry, a harm poll
and a stored post id, as people read it and as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from amber.engine import Engine
from amber.synthetic import photo
from conftest import CliResult

Cli = Callable[..., CliResult]


def _clean(result: CliResult, code: int = 0) -> CliResult:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _json(result: CliResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _clean(result).stdout.splitlines()]


def _bank(amber_cli: Cli, *files: Path) -> None:
    _clean(amber_cli("bank", "create", "terror-photos", "--label", "execution"))
    _clean(amber_cli("bank", "add", "terror-photos", *files))


def test_a_banked_photos_copy_names_the_rule_and_nothing_is_stored(
    amber_cli: Cli, photo_file: Callable[..., Path], tmp_path: Path
) -> None:
    original = photo(50, 640, 480)
    _bank(amber_cli, photo_file(50, "known.png", image=original))
    copy = photo_file(0, "copy.jpg", image=ImageOps.mirror(original))

    [explained] = _json(amber_cli("explain", copy, "--format", "json"))
    assert explained["post_id"] == "copy.jpg" and explained["origin"] == "input"
    assert explained["verdict"] == "remove" and explained["rules"] == ["bank-match"]
    assert explained["summary"] == "remove by rule bank-match"
    assert [r["rule"] for r in explained["reasons"]] == ["bank-match"]
    best = explained["nearest"][0]
    assert best["matches"] is True and best["bank"] == "terror-photos"
    assert best["distance"] <= best["threshold"] == 31
    assert best["why"].startswith("matches: distance")
    [media] = explained["media"]
    assert media["values"][0]["variant"] == "original"
    assert {v["signal_type"] for v in media["values"]} == {"sha256", "md5", "pdq", "orb"}
    pdq = next(v for v in media["values"] if v["signal_type"] == "pdq")
    assert pdq["quality"] >= 50 and pdq["min_quality"] == 50 and pdq["weak"] is False

    table = _clean(amber_cli("explain", copy))
    assert "remove by rule bank-match" in table.stdout
    assert "pdq · bank terror-photos (execution) · distance" in table.stdout
    assert "nearest bank entries" in table.stdout and "matches: distance" in table.stdout

    # Explaining a file decides nothing and keeps nothing.
    assert _clean(amber_cli("decisions", "list", "--format", "jsonl")).stdout == ""
    assert not (tmp_path / "vault").exists() or not any((tmp_path / "vault").rglob("*.json"))


def test_an_unrelated_photo_says_no_rule_fired_and_shows_the_nearest_entry(
    amber_cli: Cli, photo_file: Callable[..., Path]
) -> None:
    _bank(amber_cli, photo_file(50, "known.png"))
    other = photo_file(7, "other.png")
    [explained] = _json(amber_cli("explain", other, "--format", "json"))
    assert explained["verdict"] == "allow" and explained["rules"] == []
    assert explained["summary"] == "no rule fired" and explained["reasons"] == []
    [nearest] = explained["nearest"]  # the bank's one entry, however far
    assert nearest["entry_source"].endswith("known.png") and nearest["matches"] is False
    assert nearest["distance"] > nearest["threshold"] == 31
    assert f"distance {nearest['distance']} is above the threshold 31" in nearest["why"]

    table = _clean(amber_cli("explain", other))
    assert "allow — no rule fired" in table.stdout
    assert f"{nearest['distance']} / threshold 31" in table.stdout


def _nearly_flat(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (200, 150), (shade, 90, 90)).save(path)  # PDQ quality 0
    return path


def test_a_copy_of_a_weak_bank_entry_says_its_quality_is_below_the_minimum(
    amber_cli: Cli, tmp_path: Path
) -> None:
    _bank(amber_cli, _nearly_flat(tmp_path / "flat.png", 90))
    copy = _nearly_flat(tmp_path / "copy.jpg", 91)
    [explained] = _json(amber_cli("explain", copy, "--format", "json"))
    assert explained["verdict"] == "allow" and explained["summary"] == "no rule fired"
    [near] = [n for n in explained["nearest"] if n["signal_type"] == "pdq"]
    assert near["distance"] <= near["threshold"] and near["matches"] is False
    assert near["entry_quality"] < 50 and near["min_quality"] == 50
    why = f"the bank entry's pdq quality {near['entry_quality']} is below the policy's minimum 50"
    assert why in near["why"]
    table = _clean(amber_cli("explain", copy))
    assert "(below minimum 50)" in table.stdout and "is below the policy's" in table.stdout


def test_a_harm_poll_shows_its_signal_and_rule_for_each_post_of_a_jsonl_file(
    amber_cli: Cli, write_posts: Callable[..., Path]
) -> None:
    posts = write_posts(
        [
            {
                "id": "poll",
                "text": "Kill him or let him go? You have one hour to vote",
                "poll": {"question": "What should we do?", "options": ["Kill", "Let go"]},
            },
            {"id": "hello", "text": "hello"},
            "{not json",
        ]
    )
    result = amber_cli("explain", posts, "--format", "json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Error: " in result.stderr and "line 3" in result.stderr
    poll, hello = (json.loads(line) for line in result.stdout.splitlines())
    assert poll["post_id"] == "poll" and poll["verdict"] == "restrict"
    assert "harm-poll" in poll["rules"] and poll["media"] == [] and poll["nearest"] == []
    [signal] = [s for s in poll["signals"] if s["signal_type"] == "harm_poll"]
    assert signal["value"] == "vote" and signal["score"] >= 0.5 and signal["detail"]
    assert hello["verdict"] == "allow" and hello["summary"] == "no rule fired"

    table = amber_cli("explain", posts)
    assert "restrict by rule harm-poll" in table.stdout and "post signals" in table.stdout


def test_a_stored_post_is_rederived_while_its_media_can_be_read(
    amber_cli: Cli, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    original = photo(50, 640, 480)
    _bank(amber_cli, photo_file(50, "known.png", image=original))
    copy = photo_file(0, "copy.jpg", image=ImageOps.mirror(original))
    other = photo_file(7, "other.png")
    posts = write_posts(
        [
            {"id": "p1", "author": "ann", "media": [{"path": "images/copy.jpg"}]},
            {"id": "p2", "author": "bob", "media": [{"path": "images/other.png"}]},
        ]
    )
    _clean(amber_cli("scan", posts, "--format", "jsonl"))

    [explained] = _json(amber_cli("explain", "p1", "--format", "json"))
    assert explained["origin"] == "stored" and explained["rederived"] is True
    assert explained["verdict"] == "remove" and explained["rules"] == ["bank-match"]
    assert explained["stored"]["verdict"] == "remove" and explained["stored"]["author"] == "ann"
    assert explained["nearest"][0]["matches"] is True and explained["note"] is None
    assert explained["media"][0]["path"] == "images/copy.jpg"

    copy.unlink()
    other.unlink()
    # The removed post was preserved: its media are read from the vault's copies.
    [kept] = _json(amber_cli("explain", "p1", "--format", "json"))
    assert kept["rederived"] is True and kept["rules"] == ["bank-match"]
    assert kept["note"].startswith("media read from the evidence vault's copies")
    assert kept["media"][0]["path"] == "images/copy.jpg" and kept["nearest"][0]["matches"]
    # The allowed one was not: the stored decision, and why it cannot be re-derived.
    [gone] = _json(amber_cli("explain", "p2", "--format", "json"))
    assert gone["rederived"] is False and gone["media"] == [] and gone["nearest"] == []
    assert gone["note"].startswith("cannot re-derive: ")
    assert "other.png' does not exist" in gone["note"]
    assert gone["note"].endswith("showing the stored decision")
    assert gone["verdict"] == "allow" and gone["summary"] == "no rule fired"
    table = _clean(amber_cli("explain", "p2"))
    assert "cannot re-derive" in table.stdout and "stored decision: allow" in table.stdout


def test_an_unknown_post_id_or_format_is_a_clean_error(amber_cli: Cli) -> None:
    missing = _clean(amber_cli("explain", "nope"), 2)
    assert missing.stderr.startswith("Error: no decision for post 'nope'") and not missing.stdout
    bad = _clean(amber_cli("explain", "nope", "--format", "xml"), 2)
    assert "--format 'xml'" in bad.stderr


def test_an_explanation_is_a_frozen_value(engine: Engine, photo_file: Callable[..., Path]) -> None:
    [explained] = engine.explain_file(photo_file(3))
    assert not isinstance(explained, Exception)
    with pytest.raises(dataclasses.FrozenInstanceError):
        explained.verdict = "remove"  # type: ignore[misc]
    assert explained.to_json()["summary"] == "no rule fired" == explained.summary
    assert engine.decisions.count() == 0
