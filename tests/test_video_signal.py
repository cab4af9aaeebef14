"""Videos end to end: the ``vpdq`` signal type banked, scanned, matched and stored like
photos (issue 13). Clips are generated (``amber.synthetic.video``: benign panning scenes)
and altered with ``amber.synthetic``'s re-upload edits."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from amber import synthetic
from amber.engine import Engine
from amber.errors import SignalValueError, UserError
from amber.posts import media_post
from amber.signals import vpdq
from amber.signals.base import Content, Role, frame_of
from amber.signals.pdq import DIHEDRAL_NAMES
from amber.store.tables import entry_signals, media_signals

DATA = Path(__file__).parent / "data" / "vpdq"
SIZE = (320, 180)
FPS = 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A banked clip (12 s, a scene every 4 s), another clip, and re-uploads of the first."""
    folder = tmp_path_factory.mktemp("clips")
    w, h = SIZE

    def clip(name: str, seed: int) -> Path:
        path = folder / f"{name}.mp4"
        return synthetic.video(path, seed, width=w, height=h, fps=FPS, seconds=12, scene_seconds=4)

    banked, other = clip("banked", 21), clip("other", 22)
    frames, others = synthetic.frames_of(banked), synthetic.frames_of(other)
    edits = {
        "reencoded": frames,
        "mirrored": synthetic.mirrored(frames),
        "turned": [np.ascontiguousarray(np.rot90(f)) for f in frames],  # a phone held sideways
        "letterboxed": synthetic.boxed(frames, (w, w)),
        "screen-recorded": synthetic.screen_recorded(frames),
        "first-half": frames[: len(frames) // 2],
        # 5 s of the banked clip (its 3 s to 8 s) between 6 s of something else on each side
        "compilation": others[:60] + frames[30:80] + others[60:],
    }
    out = {"banked": banked, "other": other}
    for name, edited in edits.items():
        out[name] = synthetic.write_video(folder / f"{name}.mp4", edited, bit_rate=250_000)
    # a still photo shown for 4 s inside another clip; and one frame of the banked clip
    still = synthetic.photo(23, w, h)
    still.save(folder / "still.png")
    out["still"] = folder / "still.png"
    shown = others[:30] + [np.asarray(still)] * 40 + others[30:60]
    out["shows-still"] = synthetic.write_video(folder / "shows-still.mp4", shown)
    Image.fromarray(frames[65]).save(folder / "frame.png")
    out["frame"] = folder / "frame.png"
    return out


def _decide(engine: Engine, path: Path, post_id: str | None = None) -> dict[str, object]:
    result = engine.decide_post(media_post(path, post_id or path.name, source="test"))
    return result.outcome.to_json(post_id=post_id or path.name)


def _bank_videos(engine: Engine, clips: dict[str, Path]) -> None:
    engine.banks.create("videos", action="remove", label="execution video")
    added = engine.banks.add_files("videos", [clips["banked"]])
    assert added.added == [str(clips["banked"])] and not added.failures


def test_a_banked_video_holds_its_frames_and_its_exact_hashes(
    engine: Engine, clips: dict[str, Path]
) -> None:
    _bank_videos(engine, clips)
    with engine.db.connect() as conn:
        rows = conn.execute(sa.select(entry_signals)).all()
    kinds = {r.signal_type for r in rows}
    assert {"sha256", "md5", "vpdq"} <= kinds
    frames = [frame_of(r.variant) for r in rows if r.signal_type == "vpdq"]
    assert all(f is not None for f in frames)
    own = sorted(f.timestamp for f in frames if f is not None and f.view == "original")
    # sampled every 0.25 s, near-identical neighbours dropped: denser than 1 a second
    assert len(own) > 24 and own[0] == 0.0 and own[-1] > 11.0


@pytest.mark.parametrize(
    "copy", ["reencoded", "mirrored", "turned", "letterboxed", "screen-recorded", "first-half"]
)
def test_altered_re_uploads_match_the_banked_video(
    engine: Engine, clips: dict[str, Path], copy: str
) -> None:
    _bank_videos(engine, clips)

    decision = _decide(engine, clips[copy])

    assert decision["verdict"] == "remove", decision
    (reason,) = [r for r in decision["reasons"] if r.get("bank") == "videos"]
    assert reason["signal"] == "vpdq" and reason["label"] == "execution video"
    video = reason["video"]
    # vPDQ's query share (most of the copy; the screen recording shows the clip at a
    # third of its size, where a few frames drift past 31 bits) and ...
    assert video["post_percent"] >= 70.0, video
    assert "entry_percent" in video  # ... its compared share, both reported
    if copy == "first-half":  # half the banked video: found as a segment
        assert video["entry_percent"] < 80.0 and video["segments"], video
    else:
        assert video["entry_percent"] >= 80.0, video


def test_a_clip_inside_a_compilation_matches_with_the_times_in_both(
    engine: Engine, clips: dict[str, Path]
) -> None:
    _bank_videos(engine, clips)

    decision = _decide(engine, clips["compilation"])

    assert decision["verdict"] == "remove", decision
    (reason,) = decision["reasons"]
    (segment,) = reason["video"]["segments"]
    post_start, post_end = segment["post"]
    entry_start, entry_end = segment["entry"]
    assert 5.5 <= post_start <= 7.0 and 9.5 <= post_end <= 11.5, segment
    assert 2.5 <= entry_start <= 4.0 and 6.5 <= entry_end <= 8.5, segment
    assert reason["video"]["post_percent"] < 50.0  # most of the compilation is other footage
    assert "s of the post plays" in reason["detail"]


def test_an_unrelated_video_and_a_photo_match_nothing(
    engine: Engine, clips: dict[str, Path], photo_file: Callable[..., Path]
) -> None:
    _bank_videos(engine, clips)

    assert _decide(engine, clips["other"])["verdict"] == "allow"
    assert _decide(engine, photo_file(5, size=SIZE))["verdict"] == "allow"


def test_a_photo_of_one_frame_matches_the_banked_video_at_its_time(
    engine: Engine, clips: dict[str, Path]
) -> None:
    _bank_videos(engine, clips)

    decision = _decide(engine, clips["frame"])

    assert decision["verdict"] == "remove", decision
    (reason,) = decision["reasons"]
    assert reason["signal"] == "vpdq"
    start, end = reason["video"]["entry"]
    assert 6.0 <= start <= end <= 7.0  # frame 65 at 10 frames a second: 6.5 s


def test_a_video_showing_a_banked_photo_matches_the_photo_bank(
    engine: Engine, clips: dict[str, Path]
) -> None:
    engine.banks.create("photos", action="restrict")
    engine.banks.add_files("photos", [clips["still"]])

    decision = _decide(engine, clips["shows-still"])

    assert decision["verdict"] == "restrict", decision
    (reason,) = decision["reasons"]
    assert reason["signal"] == "pdq" and reason["bank"] == "photos"
    start, _ = reason["video"]["post"]
    assert 2.5 <= start <= 4.0  # the still is on screen from 3 s to 7 s
    assert "of the post" in reason["detail"]


def test_each_bank_threshold_is_its_frame_distance(engine: Engine, clips: dict[str, Path]) -> None:
    engine.banks.create("strict", action="review", threshold=0)
    engine.banks.create("loose", action="review")  # PDQ's 31 bits
    engine.banks.add_files("strict", [clips["banked"]])
    engine.banks.add_files("loose", [clips["banked"]])

    decision = _decide(engine, clips["mirrored"])

    by_bank = {r["bank"]: r for r in decision["reasons"]}
    assert by_bank["loose"]["video"]["post_percent"] >= 80.0
    # at 0 bits only the frames the low bit rate left exactly alone still match, if any
    strict = by_bank.get("strict")
    assert strict is None or strict["video"]["post_percent"] < 80.0


def test_a_scanned_video_keeps_its_frames_and_is_not_unreadable(
    engine: Engine, clips: dict[str, Path]
) -> None:
    decision = _decide(engine, clips["other"], "post-1")

    assert decision["verdict"] == "allow"  # a video is read, not sent to review unhashed
    with engine.db.connect() as conn:
        rows = conn.execute(sa.select(media_signals)).all()
    frames = [r for r in rows if r.signal_type == "vpdq"]
    assert len(frames) >= 10 and all(r.variant.startswith("original@") for r in frames)
    assert {"sha256", "md5"} <= {r.signal_type for r in rows}


def test_a_corrupt_video_goes_to_review_naming_the_decoder_error(
    engine: Engine, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)

    decision = _decide(engine, broken)

    assert decision["verdict"] == "review"
    (reason,) = decision["reasons"]
    assert reason["signal"] == "media" and "vpdq:" in reason["detail"]


def test_query_frames_are_sampled_a_second_apart_turned_and_trimmed(
    clips: dict[str, Path],
) -> None:
    signal = vpdq.VpdqSignal()
    values = signal.compute(Content(data=clips["letterboxed"].read_bytes()), role=Role.query)
    frames = [f for v in values if (f := frame_of(v.variant)) is not None]
    views = {f.view for f in frames}
    turns = ["", *(f"+{name}" for name in DIHEDRAL_NAMES[1:])]
    turned = {f"{view}{turn}" for view in ("original", "trimmed") for turn in turns}
    assert views == turned | {"crop80"}  # the trimmed picture's centre, as banks crop it
    times = sorted({f.timestamp for f in frames})
    assert times[:3] == [0.0, 1.0, 2.0]
    assert signal.compute(Content(data=clips["still"].read_bytes())) == []  # a photo


# -- bank files --------------------------------------------------------------------------


def test_vpdq_rows_in_bank_csvs_round_trip_as_one_entry(engine: Engine, tmp_path: Path) -> None:
    engine.banks.create("shared", action="review")
    lines = (DATA / "test-padded-dimensions.txt").read_text().strip()
    features = vpdq.read_features(DATA / "test-padded-dimensions.txt")
    text = 'signal_type,signal,label\nvpdq,"' + lines + '",shared video\n'

    result = engine.banks.import_csv("shared", _io(text), source="list.csv")
    again = engine.banks.import_csv("shared", _io(text), source="list.csv")

    assert (result.added, again.added, again.duplicates) == (1, 0, 1)
    out = _io("")
    assert engine.banks.export_csv("shared", out) == 1
    header, *exported = list(csv.reader(_io(out.getvalue())))
    assert header[:3] == ["signal_type", "signal", "label"]
    assert exported[0][0] == "vpdq" and exported[0][2] == "shared video"
    assert [f.line() for f in features] == exported[0][1].splitlines()


def test_python_threatexchange_vpdq_strings_import(engine: Engine) -> None:
    engine.banks.create("pytx", action="review")
    features = vpdq.read_features(DATA / "test-padded-dimensions.txt")[:5]
    cell = json.dumps([f"{f.pdq_hex},{f.quality},{f.timestamp}" for f in features])
    text = "vpdq," + '"' + cell.replace('"', '""') + '"\n'

    assert engine.banks.import_csv("pytx", _io(text), source="pytx.csv").added == 1
    with engine.db.connect() as conn:
        held = conn.execute(
            sa.select(entry_signals.c.value).where(entry_signals.c.signal_type == "vpdq")
        ).all()
    assert sorted(r.value for r in held) == sorted(f.pdq_hex for f in features)


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("0,100,abc,0.000", "frame_number,quality"),
        ('["ff,50"]', "pdq_hex,quality,timestamp"),
        ("[not json", "not a JSON list"),
    ],
)
def test_a_bad_vpdq_cell_is_refused_with_its_row(engine: Engine, cell: str, says: str) -> None:
    from amber.banks import ImportRowsError

    engine.banks.create("bad", action="review")
    text = "pdq," + "0" * 63 + "1\n" + 'vpdq,"' + cell.replace('"', '""') + '"\n'

    with pytest.raises(ImportRowsError) as caught:
        engine.banks.import_csv("bad", _io(text), source="bad.csv")

    assert [n for n, _ in caught.value.rows] == [2] and says in caught.value.rows[0][1]
    assert engine.banks.export_csv("bad", _io("")) == 0  # all or nothing


def test_vpdq_hash_files_import_and_export(
    amber_cli: Callable[..., object], tmp_path: Path
) -> None:
    assert amber_cli("bank", "create", "te", "--action", "review").returncode == 0
    imported = amber_cli("bank", "import", "te", DATA / "test-padded-dimensions.txt")
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 entry" in imported.stderr

    exported = amber_cli("bank", "export", "te", tmp_path / "out", "--format", "vpdq")

    assert exported.returncode == 0, exported.stderr
    (written,) = sorted((tmp_path / "out").iterdir())
    assert vpdq.read_features(written) == vpdq.read_features(DATA / "test-padded-dimensions.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("0,100," + "a" * 64 + ",0.000\n1,100,zz,0.100\n")
    refused = amber_cli("bank", "import", "te", bad)
    assert refused.returncode != 0 and "bad.txt:2" in refused.stderr


def test_cli_banks_and_scans_a_video(
    amber_cli: Callable[..., object], clips: dict[str, Path], tmp_path: Path
) -> None:
    assert amber_cli("bank", "create", "videos", "--action", "remove").returncode == 0
    added = amber_cli("bank", "add", "videos", clips["banked"])
    assert added.returncode == 0 and "added 1 entry" in added.stderr, added.stderr
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "p1", "media": [{"path": str(clips["mirrored"])}]}) + "\n")

    scanned = amber_cli("scan", posts, "--format", "jsonl")

    assert scanned.returncode == 0, scanned.stderr
    decision = json.loads(scanned.stdout)
    assert decision["verdict"] == "remove" and decision["reasons"][0]["signal"] == "vpdq"


def test_parse_reads_one_hash_as_one_frame() -> None:
    (value,) = vpdq.VpdqSignal().parse("A" * 64)
    assert value.value == "a" * 64 and value.variant == "original@0.000#0"
    with pytest.raises(SignalValueError):
        vpdq.VpdqSignal().parse("   ")


def _io(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


def test_a_removed_video_is_preserved_byte_for_byte(engine: Engine, clips: dict[str, Path]) -> None:
    from test_media_evidence import vault_bytes

    _bank_videos(engine, clips)

    assert _decide(engine, clips["letterboxed"], "v1")["verdict"] == "remove"

    assert vault_bytes(engine, "v1") == [clips["letterboxed"].read_bytes()]


def test_the_api_banks_a_video_and_decides_an_uploaded_copy(
    engine: Engine, clips: dict[str, Path], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from amber.api.app import create_app
    from amber.tokens import parse_scopes

    _, admin_token = engine.tokens.create("admin", parse_scopes("admin"))
    _, ingest_token = engine.tokens.create("ingest", parse_scopes("ingest"))
    app = create_app(engine, media_root=tmp_path, max_body=20_000_000)
    with TestClient(app) as client:
        admin = {"authorization": f"Bearer {admin_token}"}
        ingest = {"authorization": f"Bearer {ingest_token}"}
        assert client.post("/v1/banks", json={"name": "v"}, headers=admin).status_code == 201
        banked = client.post(
            "/v1/banks/v/entries",
            files=[("files", ("clip.mp4", clips["banked"].read_bytes(), "video/mp4"))],
            headers=admin,
        )
        assert banked.status_code == 200 and banked.json()["added"] == 1, banked.text

        upload = client.post(
            "/v1/posts/upload",
            data={"post": '{"id": "up1"}'},
            files=[("media", ("copy.mp4", clips["mirrored"].read_bytes(), "video/mp4"))],
            headers=ingest,
        )

    assert upload.status_code == 200, upload.text
    decision = upload.json()
    assert decision["verdict"] == "remove"
    assert decision["reasons"][0]["signal"] == "vpdq"
    assert decision["reasons"][0]["video"]["entry_percent"] >= 80.0


def test_the_console_shows_a_poster_frame_and_marks_the_matched_seconds(
    engine: Engine, clips: dict[str, Path], database: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from amber.api.app import create_app
    from amber.tokens import parse_scopes
    from test_console import Console

    engine.banks.create("known", action="review", label="execution video")
    engine.banks.add_files("known", [clips["banked"]])
    assert _decide(engine, clips["compilation"], "comp")["verdict"] == "review"
    _, token = engine.tokens.create("carol", parse_scopes("review"))
    app = create_app(engine)
    with TestClient(app):
        console = Console("http://testserver", {"carol": token}, database, tmp_path / "vault", app)
        with console.signed_in("carol") as carol:
            page = carol.get("/console/items/comp").text
            poster = carol.get("/console/media/comp/0/poster")
            views = console.custody("comp", "viewed")

    # blurred and grey by default, muted, never playing by itself, fetched only on play
    (video,) = [line for line in page.splitlines() if "<video" in line]
    assert 'class="media blurred grey"' in page
    assert "muted" in video and "autoplay" not in video and 'preload="none"' in video
    assert 'poster="/console/media/comp/0/poster"' in video
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content.startswith(b"\xff\xd8") and views[-1]["shown"] == "poster"
    # the compilation plays 3-8 s of the banked clip from about 6 s of its 17 s
    (mark,) = [line for line in page.splitlines() if 'class="hit"' in line]
    left = float(mark.split("left: ")[1].split("%")[0])
    assert 30.0 <= left <= 42.0, mark


def test_each_bank_sets_the_share_of_its_videos_a_post_must_cover(
    engine: Engine, tmp_path: Path
) -> None:
    # a 4 s banked clip and its first 2 s: too short for a segment (3 s), half the frames
    banked = synthetic.video(tmp_path / "short.mp4", 31, width=320, height=180, fps=10, seconds=4)
    start = synthetic.write_video(tmp_path / "start.mp4", synthetic.frames_of(banked)[:20])
    engine.banks.create("lenient", action="review", video_percent=40)
    engine.banks.create("strict", action="review")  # 80 %, vPDQ's operating point
    for bank in ("lenient", "strict"):
        engine.banks.add_files(bank, [banked])

    decision = _decide(engine, start)

    by_bank = {r["bank"]: r for r in decision["reasons"]}
    assert set(by_bank) == {"lenient"}, decision
    assert 40.0 <= by_bank["lenient"]["video"]["entry_percent"] < 80.0
    assert "segments" not in by_bank["lenient"]["video"]
    assert engine.banks.get("lenient").to_json()["video_percent"] == 40
    assert engine.banks.update("strict", video_percent=30).video_percent == 30
    assert {r["bank"] for r in _decide(engine, start, "again")["reasons"]} == {"lenient", "strict"}
    with pytest.raises(UserError, match="video_percent 0"):
        engine.banks.create("none", video_percent=0)


def test_a_cut_video_matches_on_what_it_holds_and_says_it_is_truncated(
    engine: Engine, clips: dict[str, Path], tmp_path: Path
) -> None:
    _bank_videos(engine, clips)
    data = clips["banked"].read_bytes()  # its index is up front: the cut keeps the frames before
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])

    result = engine.decide_post(media_post(cut, "cut", source="test"))

    assert result.media[0].truncated
    decision = result.outcome.to_json(post_id="cut")
    assert decision["verdict"] == "remove", decision
    (reason,) = decision["reasons"]
    assert reason["signal"] == "vpdq" and "the file is truncated" in reason["detail"]
    assert reason["video"]["segments"]


def test_a_long_video_s_frames_fit_in_one_csv_cell(engine: Engine) -> None:
    engine.banks.create("long", action="review")
    lines = "\n".join(f"{n},90,{n:064x},{n / 30:.3f}" for n in range(3000))  # 100 s
    assert len(lines) > 131_072  # the csv module's own limit

    result = engine.banks.import_csv("long", _io(f'vpdq,"{lines}",long video\n'), source="l.csv")

    assert result.added == 1
    out = _io("")
    engine.banks.export_csv("long", out)
    assert list(csv.reader(_io(out.getvalue())))[1][1] == lines  # under the header row


def test_explain_says_how_a_video_fared_against_each_banked_video(
    engine: Engine, clips: dict[str, Path], tmp_path: Path
) -> None:
    _bank_videos(engine, clips)
    others = synthetic.frames_of(clips["other"])
    frames = synthetic.frames_of(clips["banked"])
    glimpse = synthetic.write_video(tmp_path / "glimpse.mp4", others[:50] + frames[40:52])

    played = engine.explain(media_post(clips["compilation"], "c", source="test"))
    brief = engine.explain(media_post(glimpse, "g", source="test"))

    (whole,) = played.videos
    assert whole.matches and "segment" in whole.why
    assert played.to_json()["videos"][0]["video"]["segments"]
    assert brief.verdict == "allow"
    (near,) = brief.videos  # a second of the banked clip: frames match, the video does not
    assert not near.matches and "under the bank's 80%" in near.why, near.why


def _mp4_with(tmp_path: Path, name: str, fix: Callable[[bytes], bytes]) -> Path:
    """A small generated MP4 whose bytes ``fix`` has altered."""
    import av

    frames = synthetic.frames_of(synthetic.video(tmp_path / "base.mp4", 3, width=160, height=96,
                                                 fps=5, seconds=2))  # fmt: skip
    plain = tmp_path / "plain.mp4"
    with av.open(str(plain), "w") as out:
        out.metadata["title"] = "CafX"
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for number, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = number
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    path = tmp_path / name
    path.write_bytes(fix(plain.read_bytes()))
    return path


def test_odd_headers_are_one_post_s_problem_and_the_scan_goes_on(
    engine: Engine, clips: dict[str, Path], tmp_path: Path
) -> None:
    latin1 = _mp4_with(tmp_path, "latin1.mp4", lambda b: b.replace(b"CafX", b"Caf\xe9"))
    unknown = _mp4_with(tmp_path, "unknown.mp4", lambda b: b.replace(b"avc1", b"zzzz"))
    posts = [media_post(p, p.name, source="t") for p in (latin1, unknown, clips["other"])]

    results = {r.post.id: r for r in engine.scan(posts) if not isinstance(r, Exception)}

    assert set(results) == {"latin1.mp4", "unknown.mp4", "other.mp4"}
    assert results["latin1.mp4"].outcome.verdict == "allow"  # a Latin-1 title: frames read
    assert any(v.signal_type == "vpdq" for v in results["latin1.mp4"].media[0].values)
    unread = results["unknown.mp4"].outcome
    assert unread.verdict == "review" and "codec" in (unread.reasons[0].detail or "")


def test_an_animated_gif_is_judged_as_a_video_not_by_its_first_frame(
    engine: Engine, clips: dict[str, Path], tmp_path: Path
) -> None:
    _bank_videos(engine, clips)
    frames = synthetic.frames_of(clips["banked"])[:1] + synthetic.frames_of(clips["other"])[:60]
    gif = tmp_path / "first-then-other.gif"
    pictures = [Image.fromarray(f) for f in frames[::5]]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=500, loop=0)

    decision = _decide(engine, gif)
    values = engine.hash_media(media_post(gif, "g", source="t"))[0].values

    assert decision["verdict"] == "allow", decision  # one frame of 13 s is no copy
    assert "pdq" not in {v.signal_type for v in values}  # its frames are vpdq's


def test_banking_warns_of_a_video_that_cannot_match_or_ends_early(
    amber_cli: Callable[..., object], clips: dict[str, Path], tmp_path: Path
) -> None:
    black = synthetic.write_video(tmp_path / "black.mp4", [np.zeros((96, 160, 3), np.uint8)] * 20)
    data = clips["banked"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert amber_cli("bank", "create", "b").returncode == 0

    added = amber_cli("bank", "add", "b", black, cut)

    assert added.returncode == 0, added.stderr
    assert "black.mp4: vpdq quality 0 is below the policy's minimum 50" in added.stderr
    assert "cut.mp4 ends early" in added.stderr
    refused = amber_cli("bank", "add", "b", black, "--min-quality", "50")
    assert "refused" in refused.stderr and "black.mp4" in refused.stderr


def test_a_vpdq_cell_s_frames_must_follow_and_a_subset_is_a_new_entry(engine: Engine) -> None:
    engine.banks.create("v", action="review")
    frames = [f"{n},100,{n:064x},{n / 10:.3f}" for n in range(4)]
    backwards = "\n".join([frames[1], frames[0]])
    with pytest.raises(UserError, match="frame number 0 does not follow 1"):
        engine.banks.import_csv("v", _io(f'vpdq,"{backwards}"\n'), source="b.csv")

    whole = engine.banks.import_csv("v", _io(f'vpdq,"{chr(10).join(frames)}"\n'), source="w.csv")
    part = engine.banks.import_csv("v", _io(f'vpdq,"{chr(10).join(frames[:2])}",p\n'), source="p")

    assert (whole.added, part.added, part.duplicates) == (1, 1, 0)


def test_a_vpdq_file_with_a_bad_first_line_is_reported_as_one(
    amber_cli: Callable[..., object], tmp_path: Path
) -> None:
    bad = tmp_path / "first.txt"
    bad.write_text("0,100," + "a" * 64 + ",nan\n1,100," + "b" * 64 + ",0.100\n")
    assert amber_cli("bank", "create", "te").returncode == 0

    refused = amber_cli("bank", "import", "te", bad)

    assert refused.returncode != 0 and "first.txt:1" in refused.stderr, refused.stderr
