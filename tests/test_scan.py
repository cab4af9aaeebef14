"""Scanning end to end: banked images and their altered copies are caught, others allowed."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from amber.demo import caption, screenshot
from amber.engine import Engine, ScanResult, default_index_dir, open_engine
from amber.errors import PostError
from amber.posts import read_input
from amber.synthetic import photo


def scan(engine: Engine, path: Path) -> list[ScanResult | PostError]:
    return list(engine.scan(read_input(path)))


def test_copies_are_removed_and_innocent_posts_allowed(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    original = photo(7, 800, 600)
    known = photo_file(7, "known.png", image=original)
    engine.banks.create("known", action="remove", label="execution-photo")
    engine.banks.add_files("known", [known])
    copies = {
        "exact": known,
        "resized": photo_file(0, "resized.png", image=original.resize((300, 225))),
        "jpeg": photo_file(0, "jpeg.jpg", image=original, quality=30),
        "mirror": photo_file(0, "mirror.png", image=ImageOps.mirror(original)),
        "rotated": photo_file(0, "rot.png", image=original.transpose(Image.Transpose.ROTATE_90)),
        "meme": photo_file(0, "meme.jpg", image=caption(original, "TOP TEXT", "BOTTOM TEXT")),
        "screenshot": photo_file(0, "shot.png", image=screenshot(original)),
    }
    posts = [{"id": name, "media": [{"path": str(p)}]} for name, p in copies.items()]
    posts += [
        {"id": f"innocent-{s}", "media": [{"path": str(photo_file(s))}]} for s in (21, 22, 23)
    ]
    posts.append({"id": "text-only", "text": "hello"})
    results = scan(engine, write_posts(posts))
    verdicts = {r.post.id: r.outcome.verdict.value for r in results if isinstance(r, ScanResult)}
    assert verdicts == {
        **{name: "remove" for name in copies},
        "innocent-21": "allow",
        "innocent-22": "allow",
        "innocent-23": "allow",
        "text-only": "allow",
    }
    exact = next(r for r in results if isinstance(r, ScanResult) and r.post.id == "exact")
    signals = {reason.signal for reason in exact.outcome.reasons}
    assert {"sha256", "md5", "pdq"} <= signals
    mirror = next(r for r in results if isinstance(r, ScanResult) and r.post.id == "mirror")
    [pdq] = [r for r in mirror.outcome.reasons if r.signal == "pdq"]
    assert pdq.bank == "known" and pdq.label == "execution-photo" and pdq.entry is not None
    assert pdq.distance is not None and pdq.distance <= 31 and pdq.quality is not None
    assert "flip" in (pdq.detail or "") or "rotate" in (pdq.detail or "")


def test_rescanning_replaces_the_decision_without_duplicating(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    image = photo_file(5)
    posts = write_posts([{"id": "p1", "media": [{"path": str(image)}]}])
    assert scan(engine, posts)[0].outcome.verdict == "allow"  # type: ignore[union-attr]
    engine.auto_retrohunt = False  # the rescan decides it again here, not a retro-hunt
    engine.banks.create("known")
    engine.banks.add_files("known", [image])
    assert scan(engine, posts)[0].outcome.verdict == "remove"  # type: ignore[union-attr]
    assert engine.decisions.count() == 1
    stored = engine.decisions.get("p1")
    assert stored.verdict == "remove" and stored.scan_count == 2
    assert stored.first_scanned_at <= stored.scanned_at


def test_bad_posts_are_reported_and_the_rest_scanned(
    engine: Engine,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    # A cut PNG cannot be decoded (a cut JPEG is decoded as far as it goes:
    # tests/test_media_evidence.py).
    truncated = tmp_path / "cut.png"
    buffer = io.BytesIO()
    photo(3).save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[:2000])
    good = photo_file(4)
    results = scan(
        engine,
        write_posts(
            [
                {"id": "a", "media": [{"path": str(good)}, {"path": str(not_image)}]},
                "{broken",
                {"id": "b", "media": [{"path": str(truncated)}]},
                {"id": "c", "media": [{"path": str(good)}]},
            ]
        ),
    )
    errors = [r for r in results if isinstance(r, PostError)]
    assert [(e.line, e.field) for e in errors] == [
        (1, "media[1].path"),
        (2, None),
        (3, "media[0].path"),
    ]
    # Posts with unreadable media are still decided on what could be read, and a person
    # reviews what could not be.
    decided = {r.post.id: r.outcome for r in results if isinstance(r, ScanResult)}
    assert {k: v.verdict.value for k, v in decided.items()} == {
        "a": "review",
        "b": "review",
        "c": "allow",
    }
    [reason] = decided["a"].reasons
    assert reason.signal == "media" and reason.media == str(not_image)
    assert engine.decisions.count() == 3


def test_per_bank_threshold(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    original = photo(9, 640, 480)
    known = photo_file(9, "known.png", image=original)
    copy = photo_file(0, "copy.jpg", image=original.resize((200, 150)), quality=20)
    engine.banks.create("exact-only", threshold=0, action="review")
    engine.banks.create("loose", threshold=31, action="restrict")
    engine.banks.add_files("exact-only", [known])
    engine.banks.add_files("loose", [known])
    [result] = scan(engine, write_posts([{"id": "x", "media": [{"path": str(copy)}]}]))
    assert isinstance(result, ScanResult)
    banks = {r.bank for r in result.outcome.reasons}
    assert banks == {"loose"} and result.outcome.verdict == "restrict"


def test_low_quality_hash_never_matches_alone(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    flat = Image.new("RGB", (400, 300), (120, 130, 140))
    known = photo_file(0, "flat.png", image=flat)
    near = photo_file(0, "flat2.png", image=Image.new("RGB", (400, 300), (121, 130, 140)))
    engine.banks.create("known")
    engine.banks.add_files("known", [known])
    results = scan(
        engine,
        write_posts(
            [
                {"id": "same-bytes", "media": [{"path": str(known)}]},
                {"id": "near", "media": [{"path": str(near)}]},
            ]
        ),
    )
    by_id = {r.post.id: r for r in results if isinstance(r, ScanResult)}
    assert by_id["near"].outcome.verdict == "allow"
    assert {r.signal for r in by_id["same-bytes"].outcome.reasons} == {"sha256", "md5"}


def test_index_persists_and_catches_up_incrementally(
    database: str,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    db, vault = database, tmp_path / "v"
    with open_engine(db=db, vault=vault) as first:
        first.banks.create("known")
        first.banks.add_files("known", [photo_file(1), photo_file(2)])
        indexed = len(first.matcher.index)
    assert indexed >= 2
    assert default_index_dir(db).is_dir()
    with open_engine(db=db, vault=vault) as second:
        assert len(second.matcher.index) == indexed
        assert second.matcher.sync() == 0  # nothing to catch up: the index was kept
        second.banks.add_files("known", [photo_file(3)])
        assert len(second.matcher.index) > indexed
        [r] = scan(second, write_posts([{"id": "p", "media": [{"path": str(photo_file(3))}]}]))
        assert r.outcome.verdict == "remove"  # type: ignore[union-attr]


def test_parallel_scan_of_a_folder(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for seed in range(12):
        photo(seed, 320, 240).save(folder / f"{seed:02}.png")
    engine.banks.create("known")
    engine.banks.add_files("known", [folder / "03.png"])
    results = list(engine.scan(read_input(folder), workers=2))
    verdicts = {r.post.id: r.outcome.verdict.value for r in results if isinstance(r, ScanResult)}
    assert list(verdicts) == [f"{s:02}.png" for s in range(12)]
    assert [k for k, v in verdicts.items() if v == "remove"] == ["03.png"]


def test_a_bad_attachment_does_not_let_a_known_photo_through(
    engine: Engine,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    known = photo_file(8)
    engine.banks.create("known")
    engine.banks.add_files("known", [known])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    results = scan(
        engine, write_posts([{"id": "p", "media": [{"path": str(broken)}, {"path": str(known)}]}])
    )
    [error] = [r for r in results if isinstance(r, PostError)]
    assert error.field == "media[0].path"
    [result] = [r for r in results if isinstance(r, ScanResult)]
    assert result.outcome.verdict == "remove"
    assert {r.media for r in result.outcome.reasons if r.signal == "pdq"} == {str(known)}
    stored = engine.decisions.get("p")
    assert stored.verdict == "remove"


def test_values_the_database_cannot_hold_are_post_errors_and_the_scan_goes_on(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    bad = [
        {"id": "nul\u0000id"},
        {"id": "long-" + "x" * 500},
        {"id": "b", "author": "nul\u0000"},
        {"id": "c", "reply_to": "r" * 501},
        {"id": "d", "text": "lone \ud800"},
        {"id": "e", "text": "nul \u0000"},
        {"id": "f", "poll": {"question": "q", "options": ["\udfff"]}},
        {"id": "g", "created_at": "0001-01-01T00:00:00+01:00"},
    ]
    lines: list[object] = []
    for n, post in enumerate(bad):
        lines += [post, {"id": f"ok-{n}", "text": "fine"}]
    results = scan(engine, write_posts(lines))
    errors = [r for r in results if isinstance(r, PostError)]
    assert [(e.line, e.field) for e in errors] == [
        (1, "id"),
        (3, "id"),
        (5, "author"),
        (7, "reply_to"),
        (9, "text"),
        (11, "text"),
        (13, "poll.options[0]"),
        (15, "created_at"),
    ]
    decided = [r.post.id for r in results if isinstance(r, ScanResult)]
    assert decided == [f"ok-{n}" for n in range(len(bad))]
    assert engine.decisions.count() == len(bad)
    assert all(engine.decisions.get(f"ok-{n}").verdict == "allow" for n in range(len(bad)))
