"""Signed bags (issue 12, finding 11): BagIt manifests are unsigned, so a file planted in a
bag whose manifests were recomputed passed ``verify-bag``. A bag now carries a signed note
over every file it holds, announced in its signed ``exported`` record."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import bagit

from amber.evidence.bag import export_bag, verify_bag
from amber.evidence.vault import Vault
from conftest import run_cli

OLD = Path(__file__).parent / "data" / "evidence-v1"


def _bag(tmp_path: Path) -> Path:
    vault = Vault.open(tmp_path / "v")
    for post_id, content in (("p1", b"\xff\xd8 photo"), ("p2", b"\x89PNG other")):
        media = tmp_path / f"{post_id}.bin"
        media.write_bytes(content)
        vault.preserve(
            post_id=post_id,
            post=json.dumps({"id": post_id}),
            media=[(0, media.name, media, hashlib.sha256(content).hexdigest())],
            decision={"post_id": post_id, "verdict": "remove", "reasons": []},
            source="posts.jsonl line 1",
            policy="default@abc",
        )
    return export_bag(vault, "p1", tmp_path / "bag")


def _rehash(bag: Path) -> None:
    """What a forger does after changing a bag: recompute every manifest (bagit-python)."""
    bagit.Bag(str(bag)).save(manifests=True)


def test_a_planted_file_is_named_even_with_recomputed_manifests(tmp_path: Path) -> None:
    bag = _bag(tmp_path)
    assert verify_bag(bag).ok, verify_bag(bag).problems
    planted = bag / "data" / "media" / "1-confession.jpg"
    planted.write_bytes(b"\xff\xd8 planted")
    _rehash(bag)
    assert bagit.Bag(str(bag)).is_valid()  # the manifests alone accept it
    report = verify_bag(bag)
    assert not report.ok
    assert any("data/media/1-confession.jpg" in p for p in report.problems), report.problems
    result = run_cli("evidence", "verify-bag", bag)
    assert result.returncode == 1 and "data/media/1-confession.jpg" in result.stderr


def test_a_planted_file_outside_media_and_a_changed_bag_info_are_caught(tmp_path: Path) -> None:
    bag = _bag(tmp_path)
    original = tmp_path / "original"
    shutil.copytree(bag, original)
    (bag / "data" / "notes.txt").write_text("the user admitted it\n")
    _rehash(bag)
    assert any("data/notes.txt" in p for p in verify_bag(bag).problems)

    shutil.rmtree(bag)
    shutil.copytree(original, bag)
    info = bag / "bag-info.txt"
    info.write_text(info.read_text().replace("External-Identifier: p1", "External-Identifier: p2"))
    _rehash(bag)
    assert any("bag-info.txt" in p for p in verify_bag(bag).problems)

    shutil.rmtree(bag)
    shutil.copytree(original, bag)
    (bag / "bag-signature.txt").unlink()
    _rehash(bag)  # the signature was announced in the signed 'exported' record
    assert any("bag-signature.txt" in p for p in verify_bag(bag).problems)


def test_the_bag_signature_is_checked_against_the_published_key(tmp_path: Path) -> None:
    bag = _bag(tmp_path)
    vkey = (tmp_path / "v" / "keys" / "checkpoint.vkey").read_text().strip()
    assert verify_bag(bag, expected_key=vkey).ok
    note = bag / "bag-signature.txt"
    text = note.read_text()
    note.write_text(text.replace("data/post.json", "data/post.jsom"))
    _rehash(bag)
    problems = verify_bag(bag, expected_key=vkey).problems
    assert any("bag-signature.txt" in p and "signature" in p for p in problems), problems


def test_a_bag_made_before_issue_12_still_verifies(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    shutil.copytree(OLD / "bag", bag)
    report = verify_bag(bag)
    assert report.ok, report.problems
    assert any("no signed list of its files" in n for n in report.notes)
    (bag / "data" / "extra.txt").write_text("planted\n")
    _rehash(bag)  # even unsigned, a file that is no part of an amber bag is named
    assert any("data/extra.txt" in p for p in verify_bag(bag).problems)
