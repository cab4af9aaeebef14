"""``Engine.submit``: a post id is decided once, whichever face (API, console, library)
submits it, however many threads submit it at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from amber.engine import Engine, Submission, open_engine
from amber.posts import parse_post

POLL = {
    "id": "p1",
    "author": "g",
    "text": "Kill him or let him go? One hour to vote.",
    "poll": {"question": "?", "options": ["Kill", "Let him go"]},
}


def test_a_repeat_of_a_post_answers_the_stored_decision(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    first = engine.submit(parse_post(POLL, base=Path("."), source="test"))
    assert first.new and first.decision.verdict.value == "restrict"
    assert "freeze_poll" in first.to_json()["actions"]
    # the same id with the same content: not a rescan, the stored decision (other
    # content is the post's next version: tests/test_post_versions.py)
    again = engine.submit(parse_post(dict(POLL), base=Path("."), source="test"))
    assert not again.new and again.to_json() == first.to_json()
    assert engine.decisions.get("p1").scan_count == 1


def test_threads_submitting_one_post_id_get_one_decision(engine: Engine) -> None:
    post = parse_post(POLL, base=Path("."), source="test")
    start = threading.Barrier(6)
    answers: list[Submission] = []

    def submit() -> None:
        start.wait()
        answers.append(engine.submit(post))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 6
    assert [a.new for a in answers].count(True) == 1
    assert len({str(a.to_json()) for a in answers}) == 1
    assert engine.decisions.get("p1").scan_count == 1


def test_a_decision_another_process_stored_first_stands(
    engine: Engine, database: str, tmp_path: Path
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as other:
        theirs = other.decide_post(parse_post(POLL, base=Path("."), source="other"))
    assert theirs.saved and theirs.outcome.verdict.value == "restrict"
    mine = engine.submit(parse_post(POLL, base=Path("."), source="test"))
    assert not mine.new and mine.decision.source == "other"  # theirs, not rescanned
    assert mine.decision.scan_count == 1
