"""The whole case of DESIGN.md through the loop of issue 15, on each backend: a harm poll
is restricted and the platform told by a signed webhook; the group's result post replies
to it and is linked into the poll's incident; a re-upload by someone else, posted before
the photo was known, is caught by the retro-hunt when a reviewer banks the photo; its
author's appeal is reversed by another reviewer, restoring the post; and the transparency
report of the day counts all of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amber.engine import Engine, open_engine
from amber.posts import parse_post
from amber.statements import Statements
from amber.synthetic import photo
from amber.transparency import build_report
from conftest import Clock
from webhook_receiver import Receiver

SECRET = "whsec-" + "fedcba9876543210" * 2
POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "What should we do with him?", "options": ["Kill", "Let him go"]},
}


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))


@pytest.fixture
def engine(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as eng:
        yield eng


def decide(engine: Engine, post: dict[str, object]) -> str:
    result = engine.decide_post(parse_post(post, base=Path("."), source="case"))
    return result.outcome.verdict.value


def test_poll_to_report(engine: Engine, clock: Clock, photo_file: Callable[..., Path]) -> None:
    start = clock.now
    receiver = Receiver(SECRET)
    deliverer = engine.deliverer()
    engine.webhooks.add(receiver.url, secret=SECRET)
    engine.banks.create("confirmed", action="remove", label="execution-photo")
    result_photo = photo(91, 640, 480)
    copy = photo_file(0, "copy.jpg", image=result_photo.resize((320, 240)), quality=55)
    original = photo_file(0, "result.png", image=result_photo)
    with receiver:
        # The poll: restricted at once, its poll frozen, the threat to life flagged.
        assert decide(engine, {"id": "poll", "author": "group", **POLL}) == "restrict"
        poll = engine.decisions.get("poll")
        assert {"freeze_poll", "escalate:threat_to_life"} <= set(poll.actions)
        deliverer.run_once()
        assert receiver.wait_for(1)
        [told] = receiver.requests
        assert told.signed and told.event == "decision"
        assert (told.body["post_id"], told.body["verdict"]) == ("poll", "restrict")

        # A copy of the result photo, by someone else, before anything knows the photo.
        clock.advance(minutes=20)
        assert decide(engine, {"id": "copy", "author": "fan", "media": [{"path": str(copy)}]}) == (
            "allow"
        )

        # The group's result post, a reply to the poll: linked into the poll's incident.
        clock.advance(minutes=40)
        decide(
            engine,
            {
                "id": "result",
                "author": "group",
                "reply_to": "poll",
                "text": "It is done.",
                "media": [{"path": str(original)}],
            },
        )
        incident = engine.incidents.of_post("poll", client="_local")
        assert incident is not None
        assert engine.incidents.of_post("result", client="_local") == incident

        # A reviewer confirms the result photo into the bank: the retro-hunt catches the
        # copy posted before, decides it again and links it to the incident.
        clock.advance(minutes=5)
        engine.review.lock("result", "rita")
        engine.review.decide(
            "result", "rita", "confirm", action="remove", reason="execution", bank="confirmed"
        )
        caught = engine.decisions.get("copy")
        assert caught.verdict.value == "remove"
        assert [r.get("found_by") for r in caught.reasons] == ["retro-hunt"]
        members = {m.post_id for m in engine.incidents.get(incident).members}
        assert {"poll", "result", "copy"} <= members

        # The copy's author appeals; another reviewer reverses: the post is restored.
        clock.advance(hours=3)
        appeal = engine.appeals.file("copy", "This is a news report.", filed_by="token:platform")
        decided = engine.appeals.decide(appeal.id, "sam", "reverse", reason="news reporting")
        assert (decided.status.value, decided.action) == ("reversed", "restore")
        assert engine.decisions.get("copy").review_state == "reversed"
        [statement] = Statements.of(engine).for_post("copy")
        assert statement.status == "reversed"

        # Every change reached the platform, signed, each delivery applied once.
        deliverer.run_once()
        events = [r.event for r in receiver.requests]
        assert {"decision", "review", "appeal"} <= set(events)
        assert all(r.signed and r.answered == 200 for r in receiver.requests)
        assert len(receiver.applied) == len({r.delivery for r in receiver.requests})
        by_post = {(r.body.get("post_id"), r.event) for r in receiver.requests}
        assert ("copy", "appeal") in by_post and ("result", "review") in by_post

    # The day's transparency report counts it.
    report = build_report(engine, start, clock.now + timedelta(minutes=1)).to_json()
    assert (report["appeals"]["filed"], report["appeals"]["reversed"]) == (1, 1)
    assert report["decisions"]["human"]["appeals_decided"] == 1
    assert report["decisions"]["human"]["by_outcome"].get("confirm") == 1
    assert report["decisions"]["automated"]["restricting"] == 2  # the poll, the copy
    assert report["restrictions"]["statements"] == 3  # and the reviewer's confirmation
    assert report["restrictions"]["by_automated_decision"] == {
        "AUTOMATED_DECISION_FULLY": 2,
        "AUTOMATED_DECISION_PARTIALLY": 1,
    }
