"""Looking decisions up: DecisionStore.find's filters and order, and the stored record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amber.engine import Engine, open_engine
from amber.errors import UserError
from amber.posts import read_input

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def timed(database: str, tmp_path: Path) -> Iterator[tuple[Engine, list[datetime]]]:
    """An engine whose clock reads the first item of the list it comes with."""
    now = [START]
    with open_engine(db=database, vault=tmp_path / "vault", clock=lambda: now[0]) as engine:
        yield engine, now


def _scan(engine: Engine, path: Path) -> None:
    for _ in engine.scan(read_input(path)):
        pass


def test_find_filters_and_orders_newest_first(
    timed: tuple[Engine, list[datetime]],
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    engine, now = timed
    known, other = photo_file(31), photo_file(32)
    engine.banks.create("known")
    engine.banks.create("other-bank", action="review")
    engine.banks.add_files("known", [known])
    engine.banks.add_files("other-bank", [other])
    batches = [
        [{"id": "a", "author": "ann", "media": [{"path": str(known)}]}],
        [{"id": "b", "author": "bob", "text": "hello"}],
        [{"id": "c", "author": "ann", "media": [{"path": str(other)}]}],
        [{"id": "d", "author": "ann", "text": "known"}],  # names the bank only in its text
    ]
    for n, posts in enumerate(batches):
        now[0] = START + timedelta(hours=n)
        _scan(engine, write_posts(posts, name=f"p{n}.jsonl"))

    ids = lambda found: [d.post_id for d in found]  # noqa: E731
    assert ids(engine.decisions.find()) == ["d", "c", "b", "a"]
    assert ids(engine.decisions.find(limit=2)) == ["d", "c"]
    assert ids(engine.decisions.find(verdict="remove")) == ["a"]
    assert ids(engine.decisions.find(verdict="allow")) == ["d", "b"]
    assert ids(engine.decisions.find(author="ann")) == ["d", "c", "a"]
    assert ids(engine.decisions.find(bank="known")) == ["a"]
    assert ids(engine.decisions.find(bank="other-bank")) == ["c"]
    assert ids(engine.decisions.find(bank="missing")) == []
    assert ids(engine.decisions.find(bank="bank")) == []  # in 'other-bank', but not a bank
    hour = timedelta(hours=1)
    assert ids(engine.decisions.find(since=START + hour)) == ["d", "c", "b"]
    assert ids(engine.decisions.find(until=START + hour)) == ["a"]
    assert ids(engine.decisions.find(since=START + hour, until=START + 3 * hour)) == ["c", "b"]
    assert ids(engine.decisions.find(author="ann", verdict="review", bank="other-bank")) == ["c"]

    now[0] = START + 10 * hour  # a rescan makes a decision the newest
    _scan(engine, write_posts(batches[0], name="again.jsonl"))
    assert ids(engine.decisions.find(limit=1)) == ["a"]


def test_find_with_a_bank_stops_at_the_limit(
    timed: tuple[Engine, list[datetime]],
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> None:
    engine, now = timed
    known = photo_file(33)
    engine.banks.create("known")
    engine.banks.add_files("known", [known])
    for n in range(5):
        now[0] = START + timedelta(minutes=n)
        _scan(engine, write_posts([{"id": f"p{n}", "media": [{"path": str(known)}]}], name=f"{n}"))
    found = engine.decisions.find(bank="known", limit=3)
    assert [d.post_id for d in found] == ["p4", "p3", "p2"]


def test_find_refuses_bad_filters(engine: Engine) -> None:
    with pytest.raises(UserError, match="verdict 'deleted' is unknown"):
        engine.decisions.find(verdict="deleted")
    with pytest.raises(UserError, match="limit 0"):
        engine.decisions.find(limit=0)
    with pytest.raises(UserError, match="no time zone"):
        engine.decisions.find(since=datetime(2026, 1, 1))


def test_the_record_has_the_stored_fields_and_to_json_keeps_the_contract(
    timed: tuple[Engine, list[datetime]], write_posts: Callable[..., Path]
) -> None:
    engine, _ = timed
    post = {
        "id": "r1",
        "author": "ann",
        "reply_to": "r0",
        "created_at": "2026-05-01T11:00:00Z",
        "text": "Kill him or let him go? Vote now",
        "poll": {"question": "What should we do with him?", "options": ["Kill", "Free"]},
    }
    _scan(engine, write_posts([post]))
    decision = engine.decisions.get("r1")
    assert set(decision.to_json()) == {"post_id", "verdict", "reasons", "actions"}
    record = decision.to_record()
    assert {k: record[k] for k in ("post_id", "author", "reply_to", "scan_count")} == {
        "post_id": "r1",
        "author": "ann",
        "reply_to": "r0",
        "scan_count": 1,
    }
    assert record["created_at"] == "2026-05-01T11:00:00+00:00"
    assert record["scanned_at"] == record["first_scanned_at"] == START.isoformat()
    assert record["review_state"] == "pending" and "review" in record["actions"]
    assert record["policy"] == engine.policy.ref and record["amber_version"]
    assert [d.to_record() for d in engine.decisions.find()] == [record]
