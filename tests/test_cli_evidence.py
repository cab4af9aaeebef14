"""The evidence commands as an investigator and an operator run them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from conftest import CliResult

Cli = Callable[..., CliResult]


def test_evidence_commands_end_to_end(
    amber_cli: Cli,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    known = photo_file(12, "known.jpg")
    assert amber_cli("bank", "create", "known").returncode == 0
    assert amber_cli("bank", "add", "known", known).returncode == 0
    posts = write_posts(
        [{"id": "p1", "media": [{"path": str(known)}]}, {"id": "p2", "text": "hello"}]
    )
    assert amber_cli("scan", posts).returncode == 0

    listed = amber_cli("evidence", "list", "--format", "jsonl")
    [item] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert item["post_id"] == "p1" and item["verdict"] == "remove" and item["hold"] is None
    table = amber_cli("evidence", "list")
    assert "p1" in table.stdout and "remove" in table.stdout

    verified = amber_cli("evidence", "verify")
    assert verified.returncode == 0 and "verified" in verified.stdout

    hold = amber_cli("evidence", "hold", "p1", "--reason", "order 17/2026")
    assert hold.returncode == 0
    again = amber_cli("evidence", "hold", "p1", "--reason", "x")
    assert again.returncode == 2 and "already under hold" in again.stderr
    assert amber_cli("evidence", "hold", "nope", "--reason", "x").returncode == 2
    assert amber_cli("evidence", "release", "p1").returncode == 0
    assert amber_cli("evidence", "expire").returncode == 0  # nothing is six months old

    bag = tmp_path / "bag"
    exported = amber_cli("evidence", "export", "p1", "--out", bag)
    assert exported.returncode == 0, exported.stderr
    moved = tmp_path / "usb" / "bag"
    shutil.copytree(bag, moved)
    good = amber_cli("evidence", "verify-bag", moved)
    assert good.returncode == 0 and "verified" in good.stdout

    [media] = (moved / "data" / "media").iterdir()
    media.write_bytes(media.read_bytes() + b"x")
    bad = amber_cli("evidence", "verify-bag", moved)
    assert bad.returncode == 1 and "BROKEN" in bad.stderr and "Traceback" not in bad.stderr

    records = tmp_path / "vault" / "log" / "records.jsonl"
    data = records.read_bytes()
    records.write_bytes(data.replace(b'"remove"', b'"review"', 1))
    broken = amber_cli("evidence", "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stderr
    assert "do not hash to the signed root" in broken.stderr


def test_evidence_without_a_vault_is_a_clear_error(amber_cli: Cli) -> None:
    result = amber_cli("evidence", "list")
    assert result.returncode == 2 and "no evidence vault" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_by_hand_check_in_the_docs_works(
    amber_cli: Cli,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    """docs/evidence/check_bag.py verifies a real bag and rejects an altered record."""
    bag = _exported_bag(amber_cli, tmp_path, photo_file, write_posts)
    ok = _check_by_hand(bag)
    assert ok.returncode == 0 and "records included" in ok.stdout, ok.stderr
    assert "files match" in ok.stdout
    custody = bag / "data" / "custody.jsonl"
    original = custody.read_bytes()
    custody.write_bytes(original.replace(b'"remove"', b'"allow"'))
    assert _check_by_hand(bag).returncode != 0
    custody.write_bytes(original)
    import bagit

    (bag / "data" / "media" / "1-planted.jpg").write_bytes(b"planted")
    bagit.Bag(str(bag)).save(manifests=True)  # the manifests now accept it
    planted = _check_by_hand(bag)
    assert planted.returncode != 0 and "data/media/1-planted.jpg" in planted.stderr


def _exported_bag(
    amber_cli: Cli,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> Path:
    """Bank a photo, scan a post of it (removed, so preserved) and export its bag."""
    known = photo_file(13, "known.png")
    amber_cli("bank", "create", "known")
    amber_cli("bank", "add", "known", known)
    amber_cli("scan", write_posts([{"id": "p", "media": [{"path": str(known)}]}]))
    bag = tmp_path / "bag"
    assert amber_cli("evidence", "export", "p", "--out", bag).returncode == 0
    return bag


def _check_by_hand(bag: Path) -> CompletedProcess[str]:
    """Run the investigators' script from docs/evidence on ``bag``."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "docs" / "evidence" / "check_bag.py"
    return subprocess.run(
        [sys.executable, str(script), str(bag)], capture_output=True, text=True, timeout=60
    )


def test_the_by_hand_check_rejects_a_forged_signature(
    amber_cli: Cli,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    import base64

    bag = _exported_bag(amber_cli, tmp_path, photo_file, write_posts)
    note = bag / "data" / "checkpoint.txt"
    text = note.read_text()
    head, _, signature = text.rpartition("— ")
    name, _, value = signature.partition(" ")
    forged = base64.b64encode(b"\x00\x00\x00\x00" + base64.b64decode(value)[4:]).decode()
    for bad in (
        head + "— " + name + " " + forged + "\n",  # a signature by no known key
        head + "— x" + name[1:] + " " + value,
    ):  # the signer's name altered
        note.write_text(bad)
        assert _check_by_hand(bag).returncode != 0, bad
        assert amber_cli("evidence", "verify-bag", bag).returncode == 1
    note.write_text(text)
    vkey = (bag / "data" / "checkpoint.vkey").read_text().strip()
    assert amber_cli("evidence", "verify-bag", bag, "--key", vkey).returncode == 0
    other = amber_cli("evidence", "verify-bag", bag, "--key", "someone+00000000+AAAA")
    assert other.returncode == 1 and "not the published key" in other.stderr
    assert (bag / "bagit.txt").read_text().startswith("BagIt-Version: 1.0\n")
    (bag / "tagmanifest-sha512.txt").unlink()
    assert amber_cli("evidence", "verify-bag", bag).returncode == 1
