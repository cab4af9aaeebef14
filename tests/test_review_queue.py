"""The review queue: most urgent first, exclusive expiring locks, outcomes, banking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from amber.engine import Engine, ScanResult, open_engine
from amber.errors import AuthenticationError, ConflictError, NotFoundError, UserError
from amber.posts import read_input
from amber.synthetic import photo
from amber.tokens import Scope, parse_scopes


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2016, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue_engine(
    database: str,
    tmp_path: Path,
    clock: Clock,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> Iterator[Engine]:
    engine = open_engine(db=database, vault=tmp_path / "vault", clock=clock)
    engine.banks.create("watch", action="review")
    engine.banks.create("hide", action="restrict")
    engine.banks.add_files("watch", [photo_file(1)])
    engine.banks.add_files("hide", [photo_file(2)])
    poll = {
        "text": "Kill him or let him go? Vote now.",
        "poll": {"question": "Decide", "options": ["Kill him", "Let him go"]},
    }
    posts = [
        {"id": "old-review", "media": [{"path": str(photo_file(1))}]},
        {"id": "poll-later", **poll, "poll": {**poll["poll"], "closes_at": "2016-05-01T14:00:00Z"}},
        {"id": "poll-soon", **poll, "poll": {**poll["poll"], "closes_at": "2016-05-01T12:30:00Z"}},
        {"id": "threat", "text": "👍 = we let the prisoner go, 👎 = he dies. You decide."},
        {"id": "restricted", "media": [{"path": str(photo_file(2))}]},
        {"id": "fine", "text": "nice weather"},
    ]
    results = [r for r in engine.scan(read_input(write_posts(posts))) if isinstance(r, ScanResult)]
    assert len(results) == 6
    yield engine
    engine.close()


def test_most_urgent_first(queue_engine: Engine) -> None:
    order = [item.post_id for item in queue_engine.review.items()]
    # A threat to life without a poll gets an hour: ahead of a poll that closes later.
    assert order == ["poll-soon", "threat", "poll-later", "restricted", "old-review"]
    soon = queue_engine.review.items()[0]
    assert soon.deadline == datetime(2016, 5, 1, 12, 30, tzinfo=UTC) and soon.threat_to_life


def test_locks_are_exclusive_and_expire(queue_engine: Engine, clock: Clock) -> None:
    review = queue_engine.review
    first = review.next("alice")
    second = review.next("bob")
    assert first is not None and second is not None
    assert (first.post_id, second.post_id) == ("poll-soon", "threat")
    with pytest.raises(ConflictError, match="being reviewed by 'alice'"):
        review.lock("poll-soon", "bob")
    review.lock("poll-soon", "alice")  # renewing your own lock is fine
    clock.now += timedelta(minutes=11)  # alice walked away
    assert review.lock("poll-soon", "bob") > clock.now
    with pytest.raises(NotFoundError, match="not awaiting review"):
        review.lock("fine", "bob")


def test_outcomes_need_the_lock_and_a_reason(queue_engine: Engine) -> None:
    review = queue_engine.review
    with pytest.raises(ConflictError, match="lock post"):
        review.decide("threat", "carol", "escalate", reason="authorities")
    review.lock("threat", "carol")
    assert review.outcome("threat") is None
    with pytest.raises(UserError, match="needs a reason"):
        review.decide("threat", "carol", "escalate", reason=" ")
    with pytest.raises(UserError, match="confirm needs an action"):
        review.decide("threat", "carol", "confirm", reason="yes")
    with pytest.raises(UserError, match="outcome 'ban' is unknown"):
        review.decide("threat", "carol", "ban", reason="yes")
    done = review.decide("threat", "carol", "escalate", reason="reported to police")
    assert done.outcome == "escalate"
    assert "threat" not in [i.post_id for i in review.items()]
    assert review.item("threat").state == "escalated"
    recorded = review.outcome("threat")
    assert recorded is not None and recorded.reviewer == "carol" and recorded.outcome == "escalate"


def test_confirming_into_a_bank_catches_every_re_upload(
    queue_engine: Engine,
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
) -> None:
    """The poll's photo is new to every bank; once a reviewer confirms it into a bank, its
    re-uploads are removed automatically."""
    engine = queue_engine
    engine.banks.create("confirmed", action="remove", label="execution-photo")
    captive = photo(77, 640, 480)
    original = photo_file(0, "captive.jpg", image=captive)
    [first] = [
        r
        for r in engine.scan(
            read_input(
                write_posts(
                    [
                        {
                            "id": "p-poll",
                            "text": "Kill him or let him go? You have one hour to vote.",
                            "poll": {"question": "?", "options": ["Kill", "Let him go"]},
                            "media": [{"path": str(original)}],
                        }
                    ],
                    name="poll.jsonl",
                )
            )
        )
        if isinstance(r, ScanResult)
    ]
    assert first.outcome.verdict == "restrict"
    engine.review.lock("p-poll", "dana")
    engine.review.decide(
        "p-poll", "dana", "confirm", action="remove", reason="harm poll", bank="confirmed"
    )
    assert engine.banks.get("confirmed").entries == 1
    copy = photo_file(0, "copy.jpg", image=captive.resize((320, 240)), quality=50)
    [again] = [
        r
        for r in engine.scan(
            read_input(
                write_posts([{"id": "reupload", "media": [{"path": str(copy)}]}], name="re.jsonl")
            )
        )
        if isinstance(r, ScanResult)
    ]
    assert again.outcome.verdict == "remove"
    assert {r.bank for r in again.outcome.reasons} == {"confirmed"}


def test_a_new_scan_does_not_reopen_a_settled_review(
    queue_engine: Engine, write_posts: Callable[..., Path], photo_file: Callable[..., Path]
) -> None:
    engine = queue_engine
    engine.review.lock("restricted", "erin")
    engine.review.decide("restricted", "erin", "reject", reason="false positive")
    list(
        engine.scan(
            read_input(
                write_posts(
                    [{"id": "restricted", "media": [{"path": str(photo_file(2))}]}],
                    name="again.jsonl",
                )
            )
        )
    )
    assert engine.review.item("restricted").state == "rejected"


def test_tokens_are_stored_hashed_and_checked(engine: Engine) -> None:
    token, secret = engine.tokens.create("ingest-bot", parse_scopes("ingest,review"))
    assert token.scopes == {Scope.ingest, Scope.review}
    assert engine.tokens.authenticate(secret).name == "ingest-bot"
    with engine.db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash, scopes FROM api_tokens").all()
    assert secret not in str(stored)
    with pytest.raises(AuthenticationError, match="unknown token"):
        engine.tokens.authenticate(secret[:-2] + "xx")
    with pytest.raises(AuthenticationError, match="missing or malformed"):
        engine.tokens.authenticate(None)
    with pytest.raises(ConflictError):
        engine.tokens.create("ingest-bot", {Scope.admin})
    engine.tokens.revoke("ingest-bot")
    with pytest.raises(AuthenticationError, match="revoked"):
        engine.tokens.authenticate(secret)
    with pytest.raises(UserError, match="unknown scope 'root'"):
        parse_scopes("ingest,root")
    assert isinstance(engine.db, sa.Engine)


def test_one_name_one_token_however_many_ask_at_once(engine: Engine) -> None:
    def create(_: int) -> str:
        try:
            engine.tokens.create("hook", {Scope.ingest})
        except ConflictError:
            return "conflict"
        return "created"

    with ThreadPoolExecutor(6) as pool:
        answers = sorted(pool.map(create, range(6)))
    assert answers == ["conflict"] * 5 + ["created"]
    for name in ("b", "B", "9c", "a"):
        engine.tokens.create(name, {Scope.review})
    assert [t.name for t in engine.tokens.all()] == ["9c", "B", "a", "b", "hook"]


def test_a_poll_deadline_outside_the_plausible_window_is_clamped(
    queue_engine: Engine, write_posts: Callable[..., Path]
) -> None:
    """A poll 'closing' in 1970 must not outrank a threat to life; one closing in 9999 does
    not sit above every item without a deadline for ever (docs/console.md: the window)."""
    poll = {"question": "Decide", "options": ["Kill him", "Let him go"]}
    posts = [
        {
            "id": "decoy-1970",
            "text": "Kill him or let him go? Vote now.",
            "poll": {**poll, "closes_at": "1970-01-01T00:00:00Z"},
        },
        {
            "id": "decoy-9999",
            "text": "Kill him or let him go? Vote now.",
            "poll": {**poll, "closes_at": "9999-12-31T00:00:00Z"},
        },
    ]
    list(queue_engine.scan(read_input(write_posts(posts, name="decoys.jsonl"))))
    order = [item.post_id for item in queue_engine.review.items()]
    assert order.index("threat") < order.index("decoy-1970"), order
    assert order.index("poll-soon") < order.index("decoy-1970"), order
    now = queue_engine.clock()
    past = queue_engine.review.item("decoy-1970").deadline
    future = queue_engine.review.item("decoy-9999").deadline
    assert past is not None and past >= now  # treated as an hour, like any threat to life
    assert future is not None and future <= now + timedelta(days=7)


def test_one_reviewer_holds_at_most_max_locks(
    queue_engine: Engine,
    clock: Clock,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amber.review.queue import LockLimitError

    review = queue_engine.review
    review.max_locks = 2
    review.lock("poll-soon", "alice")
    review.lock("threat", "alice")
    with pytest.raises(LockLimitError, match="already holds 2 locks; at most 2") as info:
        review.lock("poll-later", "alice")
    first = review.next("alice")  # what next gives her is what she already holds
    assert first is not None and first.locked_by == "alice"
    assert info.value.http_status == 429
    with pytest.raises(LockLimitError, match="AMBER_REVIEW_MAX_LOCKS"):
        review.lock("restricted", "alice")
    review.lock("poll-soon", "alice")  # renewing a lock you hold is fine
    assert review.next("bob") is not None  # others are not held up
    review.unlock("poll-soon", "alice")
    assert review.lock("restricted", "alice") > clock.now
    clock.now += timedelta(minutes=11)  # expired locks do not count
    assert review.lock("old-review", "alice") > clock.now
    monkeypatch.setenv("AMBER_REVIEW_MAX_LOCKS", "3")
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as configured:
        assert configured.review.max_locks == 3
    monkeypatch.setenv("AMBER_REVIEW_MAX_LOCKS", "many")
    with pytest.raises(UserError, match="AMBER_REVIEW_MAX_LOCKS='many'"):
        open_engine(db=database, vault=tmp_path / "vault", clock=clock)


def test_giving_back_a_lock_you_do_not_hold_is_a_conflict(queue_engine: Engine) -> None:
    review = queue_engine.review
    review.lock("threat", "alice")
    with pytest.raises(ConflictError, match="held by 'alice'"):
        review.unlock("threat", "bob")
    assert review.item("threat").locked_by == "alice"
    review.unlock("threat", "alice")
    with pytest.raises(ConflictError, match="no lock"):
        review.unlock("threat", "alice")
    with pytest.raises(NotFoundError):
        review.unlock("nothing-here", "alice")
