"""Retro-hunt: content banked after its re-uploads were posted catches them. A reviewer
confirms a result photo into a bank and the copy posted before it gets a new decision,
marked found by retro-hunt, with its webhook delivery and its evidence; bank imports hunt
inline (or leave it to ``amber retrohunt``), exchanges after their fetch; exact hashes
through the database's index, PDQ within the bank's threshold; the retention window, the
reviewer's lock and decisions that already name the entry are respected; a second hunt
finds nothing new."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.hashing import hash_file
from amber.posts import parse_post
from amber.signals import Role
from amber.statements import Statements
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import CliResult, Clock

SECRET = "whsec-" + "0123456789abcdef" * 2
ANNOUNCEMENT = "As you wish, my followers."
POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "What should we do with him?", "options": ["Kill", "Let him go"]},
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as eng:
        yield eng


@pytest.fixture
def result_photo() -> Image.Image:
    return photo(77, 640, 480)


def own(path: Path, signal_type: str) -> str:
    """The file's own value of ``signal_type``, as a bank file would list it."""
    value = hash_file(path, role=Role.bank).original(signal_type)
    assert value is not None
    return value.value


def decide(engine: Engine, post: dict[str, object], client: str = "_local") -> str:
    """Decide one post; its verdict."""
    result = engine.decide_post(parse_post(post, base=Path("."), source="test"), client=client)
    return result.outcome.verdict.value


def test_a_re_upload_posted_before_its_hash_was_banked_is_caught_afterwards(
    engine: Engine, photo_file: Callable[..., Path], result_photo: Image.Image, clock: Clock
) -> None:
    engine.webhooks.add("https://platform.example/amber", secret=SECRET)
    engine.banks.create("confirmed", action="remove", label="execution-photo")
    copy = photo_file(0, "copy.jpg", image=result_photo.resize((320, 240)), quality=60)
    # The copy comes first: nothing knows the photo yet.
    assert (
        decide(engine, {"id": "copy", "author": "fan", "media": [{"path": str(copy)}]}) == "allow"
    )
    assert engine.with_evidence(engine.decisions.get("copy")).evidence == "not_needed"
    clock.advance(hours=2)
    # Then the group's result post: a poll, the photo; it goes to a reviewer.
    original = photo_file(0, "result.png", image=result_photo)
    verdict = decide(
        engine,
        {"id": "result", "author": "armed_group", **POLL, "media": [{"path": str(original)}]},
    )
    assert verdict == "restrict"
    before = engine.decisions.get("result")
    clock.advance(minutes=10)
    engine.review.lock("result", "rita")
    engine.review.decide(
        "result", "rita", "confirm", action="remove", reason="execution photo", bank="confirmed"
    )
    # The copy posted before the bank had the photo now has a new decision.
    caught = engine.decisions.get("copy")
    assert caught.verdict.value == "remove" and caught.actions == ["remove"]
    [reason] = caught.reasons
    assert reason["bank"] == "confirmed" and reason["found_by"] == "retro-hunt"
    assert reason["signal"] == "pdq" and reason["distance"] <= 31
    assert caught.first_scanned_at < caught.scanned_at == clock.now
    # ... told to the platform by webhook, from the outbox ...
    [delivery] = engine.webhooks.deliveries(post_id="copy", event="decision")[:1]
    body = json.loads(delivery.body)
    assert body["verdict"] == "remove" and body["reasons"][0]["found_by"] == "retro-hunt"
    assert delivery.state.value == "pending"
    # ... with its evidence preserved from the file it was scanned from.
    assert engine.with_evidence(caught).evidence == "preserved"
    item = engine.open_vault().item("copy")
    assert [m["sha256"] for m in item.objects["media"]] == [
        engine.decisions.media_sha256("copy")[0][2]
    ]
    # ... and its statement of reasons, as an automated decision of today.
    [statement] = Statements.of(engine).for_post("copy")
    assert statement.status == "in_force"
    assert statement.fields["application_date"] == clock.now.date().isoformat()
    assert statement.fields["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    # The reviewed post was the reviewer's, not the hunt's: its decision stands.
    after = engine.decisions.get("result")
    assert (after.verdict, after.reasons, after.review_state) == (
        before.verdict,
        before.reasons,
        "confirmed",
    )
    [report] = list(engine.hunts)
    assert [h.post_id for h in report.decided] == ["copy"] and report.locked == 1
    # In the API and the CLI's JSON, the reason says so.
    token = engine.tokens.create("admin", parse_scopes("admin"))[1]
    with TestClient(create_app(engine, sweep_every=None, deliver_every=None)) as client:
        shown = client.get("/v1/decisions/copy", headers={"authorization": f"Bearer {token}"})
    assert shown.json()["reasons"][0]["found_by"] == "retro-hunt"
    assert engine.accounts.show("fan").history[0].found_by == "retro-hunt"
    # Hunting again finds the copy already decided with the entry: nothing changes.
    again = engine.retrohunt(bank="confirmed")
    assert again.decided == [] and again.known == 1
    assert again.settled == 1  # the reviewed post: a person decided it
    assert len(engine.webhooks.deliveries(post_id="copy", event="decision")) == 2


def test_a_bank_import_hunts_inline_unless_told_not_to(
    amber_cli: Callable[..., CliResult],
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    first, second = photo_file(5), photo_file(6)
    posts = write_posts(
        [
            {"id": "p5", "author": "a", "media": [{"path": str(first)}]},
            {"id": "p6", "author": "b", "media": [{"path": str(second)}]},
            {"id": "p7", "author": "c", "text": "nothing to see"},
        ]
    )
    assert amber_cli("scan", posts).returncode == 0
    assert amber_cli("bank", "create", "shared", "--action", "restrict").returncode == 0
    sha256 = own(first, "sha256")
    (tmp_path / "one.csv").write_text(f"sha256,{sha256}\n", encoding="utf-8")
    imported = amber_cli("bank", "import", "shared", tmp_path / "one.csv")
    assert imported.returncode == 0, imported.stderr
    assert "1 decided again" in imported.stderr
    assert "p5 (_local): allow -> restrict" in imported.stderr
    shown = json.loads(amber_cli("decisions", "show", "p5", "--format", "json").stdout)
    assert shown["verdict"] == "restrict" and shown["reasons"][0]["found_by"] == "retro-hunt"
    assert shown["reasons"][0]["signal"] == "sha256"
    # With --no-retrohunt the import leaves the posts alone; amber retrohunt does it later.
    (tmp_path / "two.csv").write_text(f"pdq,{own(second, 'pdq')}\n", encoding="utf-8")
    quiet = amber_cli("bank", "import", "shared", tmp_path / "two.csv", "--no-retrohunt")
    assert quiet.returncode == 0 and "retro-hunt" not in quiet.stderr
    p6 = json.loads(amber_cli("decisions", "show", "p6", "--format", "json").stdout)
    assert p6["verdict"] == "allow"
    hunted = amber_cli(
        "retrohunt", "--bank", "shared", "--since", "2000-01-01", "--format", "jsonl"
    )
    assert hunted.returncode == 0, hunted.stderr
    lines = [json.loads(line) for line in hunted.stdout.splitlines()]
    assert [(h["post_id"], h["verdict_before"], h["verdict"]) for h in lines] == [
        ("p6", "allow", "restrict")
    ]
    assert "1 already decided with them" in hunted.stderr  # p5, by the import
    table = amber_cli("retrohunt", "--bank", "shared")
    assert table.returncode == 0 and "0 decided again" in table.stderr
    assert "2 already decided with them" in table.stderr


def test_bad_input_to_amber_retrohunt_says_what_and_where(
    amber_cli: Callable[..., CliResult],
) -> None:
    assert amber_cli("bank", "create", "b").returncode == 0
    for args, message in (
        (("--bank", "nope"), "Error: no bank called 'nope'"),
        (("--since", "last tuesday"), "Error: --since 'last tuesday' is not an ISO 8601 date"),
        (("--format", "xml"), "Error: "),
    ):
        done = amber_cli("retrohunt", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(message), done.stderr
        assert "Traceback" not in done.stderr


def test_only_posts_of_the_retention_window_within_the_banks_threshold_are_caught(
    database: str,
    tmp_path: Path,
    clock: Clock,
    photo_file: Callable[..., Path],
    result_photo: Image.Image,
) -> None:
    with open_engine(
        db=database, vault=tmp_path / "vault", clock=clock, retention=timedelta(days=30)
    ) as engine:
        old = photo_file(0, "old.png", image=result_photo)
        decide(engine, {"id": "old", "media": [{"path": str(old)}]})
        clock.advance(days=31)
        recent = photo_file(0, "recent.png", image=result_photo)
        resized = photo_file(0, "resized.jpg", image=result_photo.resize((300, 225)), quality=50)
        decide(engine, {"id": "recent", "media": [{"path": str(recent)}]})
        decide(engine, {"id": "resized", "media": [{"path": str(resized)}]})
        # An exact bank (PDQ threshold 0) takes the identical copy, not the resized one.
        engine.banks.create("exact", action="review", threshold=0)
        engine.banks.add_files("exact", [photo_file(0, "banked.png", image=result_photo)])
        report = engine.hunts[-1]
        assert sorted(h.post_id for h in report.decided) == ["recent"]
        assert engine.decisions.get("old").verdict.value == "allow"  # decided 31 days ago
        assert engine.decisions.get("resized").verdict.value == "allow"
        engine.banks.create("near", action="review", threshold=31)
        engine.banks.add_files("near", [photo_file(0, "banked2.png", image=result_photo)])
        assert sorted(h.post_id for h in engine.hunts[-1].decided) == ["recent", "resized"]
        recent_reasons = engine.decisions.get("recent").reasons
        assert {(r["bank"], r["found_by"]) for r in recent_reasons} == {
            ("exact", "retro-hunt"),
            ("near", "retro-hunt"),
        }


def test_an_allow_bank_or_a_weaker_decision_changes_nothing(
    engine: Engine, photo_file: Callable[..., Path], result_photo: Image.Image
) -> None:
    post = photo_file(0, "post.png", image=result_photo)
    decide(engine, {"id": "known-good", "media": [{"path": str(post)}]})
    engine.banks.create("benign", action="allow")
    engine.banks.add_files("benign", [photo_file(0, "benign.png", image=result_photo)])
    assert engine.hunts[-1].entries == 0
    assert engine.decisions.get("known-good").reasons == []


def test_an_exchange_fetch_hunts_what_it_added(
    engine: Engine, photo_file: Callable[..., Path], tmp_path: Path
) -> None:
    shared = photo_file(9)
    decide(engine, {"id": "seen", "author": "x", "media": [{"path": str(shared)}]})
    source = tmp_path / "shared.txt"
    source.write_text(f"pdq {own(shared, 'pdq')}\n", encoding="utf-8")
    engine.banks.create("partners", action="restrict")
    engine.exchanges.create(
        "PARTNERS", api="local_file", bank="partners", config={"filename": str(source)}
    )
    result = engine.exchanges.fetch("PARTNERS")
    assert result.succeeded and result.counts.added == 1, result.to_json()
    caught = engine.decisions.get("seen")
    assert caught.verdict.value == "restrict"
    [reason] = caught.reasons
    assert reason["found_by"] == "retro-hunt" and reason["bank"] == "partners"


def test_with_no_past_posts_a_hunt_counts_the_entries_and_decides_nothing(
    engine: Engine,
) -> None:
    engine.banks.create("list")
    hashes = [f"{n:064x}" for n in range(1, 40)]
    engine.banks.import_text(
        "list", io.StringIO("\n".join(hashes)), source="l", format="hashes", signal_type="pdq"
    )

    report = engine.retrohunt(bank="list")

    assert (report.entries, report.candidates, report.decided) == (39, 0, [])
    decide(engine, {"id": "later", "text": "an ordinary post"})  # a post without media
    assert engine.retrohunt(bank="list").entries == 39
