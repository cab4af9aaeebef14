"""``amber demo``: the case from DESIGN.md, played with generated, benign images.

An armed group's "result" photo and its video are already in a bank of known content. The
group posts the photo ("As you wish, my followers"), other accounts re-upload it resized,
re-encoded, captioned as a meme, mirrored and screenshotted, and the video re-posted
vertically and cut into a compilation; ordinary users post their own photos. amber
removes every copy and allows the rest, and says why. The images and the video are drawn
by ``amber.synthetic``; the harm is only in the labels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps
from rich.console import Console
from rich.markup import escape

from amber import synthetic
from amber.engine import ScanResult, open_engine
from amber.errors import UserError
from amber.evidence.bag import export_bag, verify_bag
from amber.posts import read_input
from amber.render import render_results
from amber.synthetic import photo

MARKER = ".amber-demo"
RESULT_PHOTO_SEED = 2016
PRISONER_SEED = 1999
OTHER_KNOWN_SEEDS = (11, 12, 13)
INNOCENT_SEEDS = (101, 102)
RESULT_VIDEO_SEED = 2017
OTHER_FOOTAGE_SEED = 303
BANK = "known-atrocity-media"


def caption(image: Image.Image, top: str, bottom: str) -> Image.Image:
    """A meme: white bars with black text above and below the picture."""
    bar = max(24, image.height // 7)
    canvas = Image.new("RGB", (image.width, image.height + 2 * bar), "white")
    canvas.paste(image, (0, bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((10, bar // 3), top, fill="black")
    draw.text((10, image.height + bar + bar // 3), bottom, fill="black")
    return canvas


def screenshot(image: Image.Image) -> Image.Image:
    """The picture inside a phone-app-like frame: dark bars and a grey margin."""
    margin, header, footer = image.width // 20, image.height // 8, image.height // 6
    canvas = Image.new(
        "RGB", (image.width + 2 * margin, image.height + header + footer), (32, 32, 36)
    )
    canvas.paste(image, (margin, header))
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, header // 3), "@copy_account_4  12m", fill=(230, 230, 230))
    draw.text(
        (margin, image.height + header + footer // 3), "like  reply  share", fill=(200, 200, 200)
    )
    return canvas


def _prepare(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            raise UserError(
                f"{str(folder)!r} exists and is not an amber demo folder; choose another --dir"
            )
        shutil.rmtree(folder)
    (folder / "known").mkdir(parents=True)
    (folder / "posts").mkdir()
    (folder / MARKER).write_text("made by amber demo; deleted and remade on every run\n")


def write_case(folder: Path) -> Path:
    """Write the demo's images and posts under ``folder``; returns the posts file."""
    result_photo = photo(RESULT_PHOTO_SEED, 800, 600)
    result_photo.save(folder / "known" / "result-photo.png")
    for seed in OTHER_KNOWN_SEEDS:
        photo(seed, 640, 480).save(folder / "known" / f"known-{seed}.png")

    media = folder / "posts"
    shutil.copy(folder / "known" / "result-photo.png", media / "result.png")
    result_photo.resize((400, 300), Image.Resampling.BILINEAR).save(media / "resized.png")
    result_photo.save(media / "reencoded.jpg", quality=35)
    caption(result_photo, "THEY ASKED, HE ANSWERED", "share before it's deleted").save(
        media / "meme.jpg", quality=85
    )
    ImageOps.mirror(result_photo).save(media / "mirrored.jpg", quality=90)
    screenshot(result_photo).save(media / "screenshot.png")
    for seed in INNOCENT_SEEDS:
        photo(seed, 800, 600).save(media / f"holiday-{seed}.jpg", quality=90)
    write_videos(folder)

    posts = [
        {
            "id": "p-100",
            "author": "armed_group",
            "created_at": "2016-05-01T13:05:00Z",
            "text": "As you wish, my followers.",
            "media": [{"path": "posts/result.png"}],
        },
        {
            "id": "p-101",
            "author": "copy_account_1",
            "text": "look what they did",
            "media": [{"path": "posts/resized.png"}],
            "reply_to": "p-100",
        },
        {"id": "p-102", "author": "copy_account_2", "media": [{"path": "posts/reencoded.jpg"}]},
        {
            "id": "p-103",
            "author": "copy_account_3",
            "text": "lol",
            "media": [{"path": "posts/meme.jpg"}],
        },
        {"id": "p-104", "author": "copy_account_5", "media": [{"path": "posts/mirrored.jpg"}]},
        {"id": "p-105", "author": "copy_account_4", "media": [{"path": "posts/screenshot.png"}]},
        {
            "id": "p-106",
            "author": "copy_account_6",
            "text": "full video",
            "media": [{"path": "posts/vertical.mp4"}],
        },
        {"id": "p-107", "author": "news_mashup", "media": [{"path": "posts/compilation.mp4"}]},
        {
            "id": "p-200",
            "author": "gardener",
            "text": "My tomatoes this summer",
            "media": [{"path": "posts/holiday-101.jpg"}],
        },
        {
            "id": "p-201",
            "author": "traveller",
            "text": "Sunset at the lake",
            "media": [{"path": "posts/holiday-102.jpg"}],
        },
        {"id": "p-202", "author": "baker", "text": "Does anyone know a good bakery nearby?"},
    ]
    file = folder / "posts.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    return file


def write_videos(folder: Path) -> None:
    """The group's video (8 s of generated panning scenes, banked) and two re-uploads: re-posted
    vertically (9:16, black bars) and 4 s of it inside a compilation of other footage."""
    size = {"width": 320, "height": 180, "fps": 10}
    known = synthetic.video(folder / "known" / "result-video.mp4", RESULT_VIDEO_SEED, seconds=8,
                            scene_seconds=4, **size)  # fmt: skip
    other = synthetic.frames_of(
        synthetic.video(folder / "other.mp4", OTHER_FOOTAGE_SEED, seconds=8, **size)
    )
    (folder / "other.mp4").unlink()
    frames = synthetic.frames_of(known)
    synthetic.write_video(folder / "posts" / "vertical.mp4", synthetic.boxed(frames, (180, 320)))
    synthetic.write_video(
        folder / "posts" / "compilation.mp4", other[:40] + frames[20:60] + other[40:]
    )


def write_poll(folder: Path) -> Path:
    """Write the post that opens the case: a captive and a poll on his life."""
    photo(PRISONER_SEED, 800, 600).save(folder / "posts" / "captive.jpg", quality=90)
    poll = {
        "id": "p-099",
        "author": "armed_group",
        "created_at": "2016-05-01T12:00:00Z",
        "text": "Kill him or let him go? You have one hour to vote.",
        "poll": {
            "question": "What should we do with him?",
            "options": ["Kill him", "Let him go"],
            "closes_at": "2016-05-01T13:00:00Z",
        },
        "media": [{"path": "posts/captive.jpg"}],
    }
    file = folder / "poll.jsonl"
    file.write_text(json.dumps(poll) + "\n", encoding="utf-8")
    return file


def run_demo(folder: Path, *, out: Console, err: Console) -> None:
    """Build the demo folder, bank the known images, scan the posts and explain."""
    _prepare(folder)
    poll_file = write_poll(folder)
    posts_file = write_case(folder)
    db, vault = folder / "amber.db", folder / "amber-vault"
    out.print(f"[bold]amber demo[/] in {escape(str(folder))}/ (database {escape(str(db))})\n")
    with open_engine(db=db, vault=vault) as engine:
        out.print(
            "[bold]1. A bank of known content.[/] The group's 'result' photo is already "
            "known (hashes shared from an earlier post elsewhere); matches are removed."
        )
        bank = engine.banks.create(BANK, action="remove", label="execution-result")
        added = engine.banks.add_files(BANK, [folder / "known"])
        videos = sum(1 for path in added.added if path.endswith(".mp4"))
        out.print(
            f"   bank {bank.name!r}: {len(added.added) - videos} images and {videos} video, "
            f"action {bank.action}, PDQ threshold {bank.threshold}\n"
        )
        out.print(
            "[bold]2. 12:00, the poll.[/] The group posts a captive with a poll: "
            "'Kill him or let him go? You have one hour to vote.' The photo is new, so no "
            "bank can know it; the words can.\n"
        )
        poll = [r for r in engine.scan(read_input(poll_file)) if isinstance(r, ScanResult)]
        out.print(render_results(poll))
        out.print(
            "   Restricted on arrival, 60 minutes before the poll closes: hidden, poll "
            "frozen, first in line for a reviewer, threat to life flagged for escalation.\n"
        )
        out.print(
            "[bold]3. 13:05, the result and its copies.[/] The group posts 'As you wish, my "
            "followers.' with the photo; other accounts re-upload it resized, re-encoded, "
            "as a captioned meme, mirrored and as a screenshot, and the group's video "
            "re-posted vertically and cut into a compilation; ordinary users post their "
            "own pictures.\n"
        )
        results = [r for r in engine.scan(read_input(posts_file)) if isinstance(r, ScanResult)]
        vault_ = engine.open_vault()
        held = len(vault_.items())
        bag = export_bag(vault_, "p-100", folder / "evidence-p-100", actor="amber demo")
    out.print(render_results(results))
    removed = [r for r in results if r.outcome.verdict == "remove"]
    photos = sum(1 for r in removed if not any(m.file.suffix == ".mp4" for m in r.post.media))
    out.print(
        f"\n[bold]4. What happened.[/] The poll was restricted for its words. {photos} copies "
        "of the known photo were removed: the exact file by SHA-256, and every altered copy "
        "by PDQ within the bank's threshold (the mirrored copy through a dihedral variant, "
        f"the meme and the screenshot after trimming their bars). {len(removed) - photos} "
        "copies of the known video were removed by its frames (vPDQ): the vertical re-post "
        "after trimming its bars, the compilation for the seconds it plays of the video "
        "(the reasons give the time ranges in both). The group's announcement "
        "was also flagged as the outcome of its own poll (threat to life). The other posts "
        "were allowed.\n"
        f"Decisions are stored in {escape(str(db))}; scan again by hand with:\n"
        f"   amber scan {escape(str(posts_file))} --db {escape(str(db))} --format jsonl"
    )
    report = verify_bag(bag)
    out.print(
        f"\n[bold]5. The evidence.[/] {held} posts were preserved in the vault "
        f"{escape(str(vault))}: original bytes, post, decision and custody records in a "
        "signed Merkle log. The bag of the group's post was exported for investigators "
        f"to {escape(str(bag))}/ and verified offline: "
        + ("[green]OK[/]" if report.ok else "[red]FAILED[/]")
        + f" ({report.records} custody records proven against checkpoint size "
        f"{report.tree_size}, signed by {escape(report.key or '?')}).\n"
        f"Check it yourself: amber evidence verify-bag {escape(str(bag))}  (or by hand: "
        "docs/evidence.md)"
    )
    if not report.ok:
        raise UserError("the demo's evidence bag did not verify: " + "; ".join(report.problems))
