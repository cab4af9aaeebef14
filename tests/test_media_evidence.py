"""Every media file keeps its evidence: exact hashes of the bytes received whatever the
decoder says, truncated images decoded as far as they go (and said to be truncated), and
undecodable files (video, HEIC, SVG, empty, unknown) matched by their exact hashes and
preserved in the vault like any other."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from amber.engine import Engine
from amber.posts import parse_post
from amber.synthetic import photo

#: Files no decoder of amber's reads, by kind: each is matched and kept by its bytes.
UNDECODABLE = {
    "video": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08mdat" * 8,
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(256)),
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "empty": b"",
    "unknown": bytes(range(256)) * 4,
}


def post_of(path: Path, post_id: str = "p") -> object:
    return parse_post({"id": post_id, "media": [{"path": str(path)}]}, base=Path("."))


def vault_bytes(engine: Engine, post_id: str) -> list[bytes]:
    """The media bytes the vault holds for ``post_id``, in position order."""
    vault = engine.open_vault()
    media = sorted(vault.item(post_id).objects.get("media", []), key=lambda m: m["position"])
    return [vault.object_path(m["sha256"]).read_bytes() for m in media]


@pytest.mark.parametrize("cut", [1, 200])
def test_a_truncated_banked_jpeg_matches_as_the_whole_photo_and_says_so(
    engine: Engine, photo_file: Callable[..., Path], tmp_path: Path, cut: int
) -> None:
    whole = photo_file(7, "known.jpg", image=photo(7, 640, 480))
    engine.banks.create("known", action="remove")
    engine.banks.add_files("known", [whole])
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[:-cut])

    full = engine.decide_post(post_of(whole, "whole"))  # type: ignore[arg-type]
    result = engine.decide_post(post_of(truncated, "cut"))  # type: ignore[arg-type]

    assert result.outcome.verdict == full.outcome.verdict == "remove"
    [pdq] = [r for r in result.outcome.reasons if r.signal == "pdq"]
    assert pdq.bank == "known" and "truncated" in (pdq.detail or "")
    assert not any(r.rule == "unreadable-media" for r in result.outcome.reasons)
    [media] = result.media
    sha256 = media.original("sha256")
    md5 = media.original("md5")
    assert sha256 is not None and sha256.value == hashlib.sha256(data[:-cut]).hexdigest()
    assert md5 is not None and md5.value == hashlib.md5(data[:-cut]).hexdigest()
    assert vault_bytes(engine, "cut") == [data[:-cut]]


@pytest.mark.parametrize("kind", sorted(UNDECODABLE))
def test_undecodable_media_are_hashed_matched_by_imported_md5_and_preserved(
    engine: Engine, amber_cli: Callable[..., object], tmp_path: Path, kind: str
) -> None:
    data = UNDECODABLE[kind]
    banked = tmp_path / f"banked.{kind}"
    banked.write_bytes(data)
    rows = tmp_path / "rows.csv"
    rows.write_text(f"signal_type,signal\nvideo_md5,{hashlib.md5(data).hexdigest()}\n")
    assert amber_cli("bank", "create", "videos", "--action", "remove").returncode == 0  # type: ignore[attr-defined]
    assert amber_cli("bank", "import", "videos", rows).returncode == 0  # type: ignore[attr-defined]

    result = engine.decide_post(post_of(banked, "banked"))  # type: ignore[arg-type]

    assert result.outcome.verdict == "remove"
    [md5] = [r for r in result.outcome.reasons if r.signal == "md5"]
    assert md5.bank == "videos"
    unreadable = [r for r in result.outcome.reasons if r.rule == "unreadable-media"]
    assert unreadable and unreadable[0].media == str(banked)  # still said: no pixels seen
    [media] = result.media
    sha256 = media.original("sha256")
    assert sha256 is not None and sha256.value == hashlib.sha256(data).hexdigest()
    assert vault_bytes(engine, "banked") == [data]


@pytest.mark.parametrize("kind", ["video", "svg"])
def test_undecodable_media_sent_to_review_are_preserved(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    file = tmp_path / f"upload.{kind}"
    file.write_bytes(UNDECODABLE[kind])
    result = engine.decide_post(post_of(file))  # type: ignore[arg-type]
    assert result.outcome.verdict == "review"
    assert vault_bytes(engine, "p") == [UNDECODABLE[kind]]
    stored = engine.decisions.get("p")
    assert stored.verdict == "review"
