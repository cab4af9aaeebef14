"""Webhooks end to end, on both backends, against a real receiver on a local socket
(``webhook_receiver``) that checks every signature with its own HMAC and applies each
delivery once by its ``X-Amber-Delivery`` id.

What is proved: each decision and each later change (a changed rescan, a new version, a
reviewer's outcome, a removal order) is delivered, signed, with the event's metadata; a
receiver that fails first (500 before or after applying, slower than the timeout, down)
gets the delivery again with the same id, and applies it once; a delivery that never
gets through is failed after the most attempts, listed, counted, and retried by hand; a
new process sends what an earlier one left (even a claimed, unsent one, once its lease
ends); a rolled-back decision leaves no delivery; several senders at once send each
delivery once; one post's changes arrive in order. The clock and the backoff are
injected: no test waits for a retry.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.decisions import NewDecision
from amber.engine import Engine, ScanResult, open_engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.evidence.acts import RemovalOrder
from amber.policy import Outcome, Verdict
from amber.posts import Post, parse_post
from amber.store.tables import webhook_deliveries
from amber.tokens import parse_scopes
from amber.webhook_delivery import Backoff, Deliverer, HttpSender
from amber.webhooks import DeliveryState, emit, parse_events
from conftest import CliResult
from webhook_receiver import Receiver

SECRET = "whsec-" + "0123456789abcdef" * 2
POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "Kill him or let him go?", "options": ["Kill him", "Let him go"]},
}


class Clock:
    """A clock the test moves; it starts an hour before the real time, so that what a
    real process (with the real clock) sees is due and its leases are over."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as eng:
        yield eng


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as found:
        yield found


def _deliverer(engine: Engine, *, hangs: bool = False, **options: Any) -> Deliverer:
    """A sender with a seeded backoff of 10 s doubling to 10 min; a read timeout a loaded
    machine cannot miss (the receiver answers at once), or half a second where the test
    makes the receiver hang (``hangs``)."""
    options.setdefault(
        "backoff", Backoff(timedelta(seconds=10), timedelta(minutes=10), random.Random(7))
    )
    options.setdefault("send", HttpSender(connect_timeout=5, read_timeout=0.5 if hangs else 10))
    return engine.deliverer(**options)


def _post(engine: Engine, post_id: str, tmp_path: Path, **fields: Any) -> ScanResult:
    post: Post = parse_post({"id": post_id, **fields}, base=tmp_path)
    return engine.decide_post(post)


def _rows(engine: Engine) -> list[Any]:
    with engine.db.connect() as conn:
        return list(conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id)))


def _next_attempt(engine: Engine, delivery: str) -> datetime:
    return engine.webhooks.delivery(delivery).next_attempt_at


# -- what is delivered ---------------------------------------------------------------------


def test_a_decision_is_delivered_signed_with_its_json_and_the_events_metadata(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    hook = engine.webhooks.add(receiver.url, secret=SECRET, actor="test")
    assert [e.value for e in hook.events] == ["decision", "review", "appeal", "order"]
    decided = _post(engine, "poll-1", tmp_path, **POLL)
    assert decided.outcome.verdict is Verdict.restrict
    (pending,) = engine.webhooks.deliveries(state="pending")
    assert pending.attempts == 0 and pending.post_id == "poll-1" and pending.client == "_local"

    report = _deliverer(engine).run_once()
    assert report.delivered == [pending.delivery] and not report.retrying
    (got,) = receiver.requests
    assert got.signed and got.delivery == pending.delivery and got.event == "decision"
    stored = engine.decisions.get("poll-1")
    assert got.body == {
        "event": "decision",
        "delivery": pending.delivery,
        "occurred_at": clock.now.isoformat(),
        **stored.to_answer(),
        "review_state": "pending",
    }
    assert "freeze_poll" in got.body["actions"] and got.attempt == "1"
    done = engine.webhooks.delivery(pending.delivery)
    assert done.state is DeliveryState.delivered and done.attempts == 1
    assert done.delivered_at == clock.now and done.last_status == 200
    assert engine.webhooks.get(hook.id).delivered == 1
    assert _deliverer(engine).run_once().attempted == 0  # nothing is sent twice


def test_every_later_change_is_delivered_and_an_unchanged_rescan_is_not(
    engine: Engine,
    receiver: Receiver,
    tmp_path: Path,
    photo_file: Callable[..., Path],
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    image = photo_file(11)
    _post(engine, "p1", tmp_path, text="a photo", media=[{"path": str(image)}])
    _post(engine, "p1", tmp_path, text="a photo", media=[{"path": str(image)}])  # unchanged
    assert len(_rows(engine)) == 1
    engine.banks.create("known", action="remove")
    engine.banks.add_files("known", [image])
    # The same content scanned again after the bank changed: a changed decision.
    rescanned = list(
        engine.scan(
            [
                parse_post(
                    {"id": "p1", "text": "a photo", "media": [{"path": str(image)}]}, base=tmp_path
                )
            ]
        )
    )
    assert isinstance(rescanned[0], ScanResult) and rescanned[0].outcome.verdict is Verdict.remove
    _post(engine, "p1", tmp_path, text="a photo, edited", media=[{"path": str(image)}])
    _deliverer(engine).run_once()
    bodies = [receiver.applied[r.delivery] for r in _rows(engine)]
    assert [(b["verdict"], b["version"]) for b in bodies] == [
        ("allow", 1),
        ("remove", 1),
        ("remove", 2),
    ]
    assert all(r.signed for r in receiver.requests) and len(receiver.requests) == 3


def test_review_outcomes_and_removal_orders_are_delivered(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    _post(engine, "poll-1", tmp_path, **POLL)
    _post(engine, "poll-2", tmp_path, **POLL)
    engine.review.lock("poll-1", "alice")
    clock.advance(minutes=3)
    engine.review.decide("poll-1", "alice", "reject", reason="a quiz about a film")
    clock.advance(minutes=1)
    engine.acts.removal_order(
        "poll-2",
        RemovalOrder(reference="TCO-2026-17", authority="BKA", legal_basis="2021/784 Art. 3"),
        sent_by="platform-legal",
    )
    _deliverer(engine).run_once()
    by_post: dict[str, list[str]] = {}
    for r in receiver.requests:
        by_post.setdefault(r.body["post_id"], []).append(r.event)
    assert by_post == {"poll-1": ["decision", "review"], "poll-2": ["decision", "order"]}
    (review,) = [r.body for r in receiver.requests if r.event == "review"]
    assert review["review_state"] == "rejected" and review["verdict"] == "restrict"
    assert review["review"]["outcome"] == "reject" and review["review"]["reviewer"] == "alice"
    assert review["review"]["reason"] == "a quiz about a film"
    (order,) = [r.body for r in receiver.requests if r.event == "order"]
    assert order["order"] == {
        "reference": "TCO-2026-17",
        "authority": "BKA",
        "legal_basis": "2021/784 Art. 3",
        "sent_by": "platform-legal",
        "received_at": clock.now.isoformat(),
        # The threat to life's hour from the scan, 4 minutes before the order's: kept.
        "deadline": (clock.now - timedelta(minutes=4) + timedelta(hours=1)).isoformat(),
    }
    assert order["occurred_at"] == clock.now.isoformat() and order["review_state"] == "pending"
    assert all(r.signed for r in receiver.requests)


def test_a_webhook_gets_only_its_events_and_its_clients_posts(
    engine: Engine, tmp_path: Path
) -> None:
    with Receiver(SECRET) as every, Receiver(SECRET) as reviews, Receiver(SECRET) as other:
        engine.webhooks.add(every.url, secret=SECRET)
        engine.webhooks.add(reviews.url, secret=SECRET, events="review")
        engine.webhooks.add(other.url, secret=SECRET, client="platform-b")
        _post(engine, "poll-1", tmp_path, **POLL)
        engine.review.lock("poll-1", "alice")
        engine.review.decide("poll-1", "alice", "escalate", reason="for legal")
        _deliverer(engine).run_once()
        assert [r.event for r in every.requests] == ["decision", "review"]
        assert [r.event for r in reviews.requests] == ["review"]
        assert other.requests == []


# -- a receiver that fails -----------------------------------------------------------------


def test_a_receiver_that_fails_first_applies_each_delivery_once(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    for n in range(3):
        _post(engine, f"poll-{n}", tmp_path, **POLL)
    deliverer = _deliverer(engine, batch=1, hangs=True)
    # poll-0: 500 before applying; poll-1: applied, then 500; poll-2: applied, no answer in time.
    receiver.fail_next("fail", "fail_after", "hang")
    report = deliverer.run_once()
    assert not report.delivered and len(report.retrying) == 3
    reasons = {d: why for d, _, why in report.retrying}
    ids = [r.delivery for r in _rows(engine)]
    assert reasons[ids[0]].startswith("HTTP 500") and reasons[ids[1]].startswith("HTTP 500")
    assert "no answer in time" in reasons[ids[2]]
    assert set(receiver.applied) == set(ids[1:])  # poll-1 and poll-2 took effect already
    for d in ids:  # each waits for its backoff: 5 to 10 s after the first failure
        wait = _next_attempt(engine, d) - clock.now
        assert timedelta(seconds=5) <= wait <= timedelta(seconds=10)
    assert deliverer.run_once().attempted == 0  # not before its time
    receiver.release.set()

    clock.advance(seconds=10)
    report = deliverer.run_once()
    assert sorted(report.delivered) == sorted(ids)
    # Every delivery took effect once, though each was sent twice, with the same id.
    assert set(receiver.applied) == set(ids)
    assert Counter(r.delivery for r in receiver.requests) == {d: 2 for d in ids}
    assert all(r.signed for r in receiver.requests)
    assert [r.attempt for r in receiver.requests if r.delivery == ids[0]] == ["1", "2"]
    for d in ids:
        done = engine.webhooks.delivery(d)
        assert done.state is DeliveryState.delivered and done.attempts == 2
    (hook,) = engine.webhooks.all()
    assert (hook.delivered, hook.failures, hook.pending) == (3, 3, 0)


def test_a_receiver_that_is_down_gets_the_delivery_when_it_is_back(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    receiver.stop()
    _post(engine, "poll-1", tmp_path, **POLL)
    deliverer = _deliverer(engine)
    for failures in (1, 2, 3):
        report = deliverer.run_once()
        ((delivery, retry_at, why),) = report.retrying
        assert "Connection refused" in why or "ConnectionRefused" in why, why
        # 10 s, 20 s, 40 s, each times a jitter between 0.5 and 1.
        longest = timedelta(seconds=10 * 2 ** (failures - 1))
        assert longest / 2 <= retry_at - clock.now <= longest
        clock.now = retry_at
    listed = engine.webhooks.delivery(delivery)
    assert listed.state is DeliveryState.pending and listed.attempts == 3
    assert listed.last_status is None and "refused" in (listed.last_error or "").lower()
    receiver.start()
    assert deliverer.run_once().delivered == [delivery]
    assert list(receiver.applied) == [delivery]


def test_a_delivery_that_never_gets_through_is_failed_listed_and_retried_by_hand(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    hook = engine.webhooks.add(receiver.url, secret=SECRET)
    _post(engine, "poll-1", tmp_path, **POLL)
    deliverer = _deliverer(engine, max_attempts=3)
    receiver.fail_next("fail", "fail", "fail")
    for _ in range(2):
        assert len(deliverer.run_once().retrying) == 1
        clock.advance(minutes=10)
    report = deliverer.run_once()
    ((delivery, why),) = report.failed
    assert why == "HTTP 500: receiver broke"
    (failed,) = engine.webhooks.deliveries(state="failed")
    assert failed.delivery == delivery and failed.attempts == 3
    assert failed.to_json()["next_attempt_at"] is None
    clock.advance(hours=48)
    assert deliverer.run_once().attempted == 0  # dead: only a hand retry sends it
    assert engine.webhooks.get(hook.id).failed == 1
    retried = engine.webhooks.retry(delivery)
    assert retried.state is DeliveryState.pending and retried.attempts == 0
    with pytest.raises(ConflictError, match="is pending, not failed"):
        engine.webhooks.retry(delivery)
    assert deliverer.run_once().delivered == [delivery]
    assert list(receiver.applied) == [delivery]
    with pytest.raises(ConflictError, match="is delivered, not failed"):
        engine.webhooks.retry(delivery)
    with pytest.raises(NotFoundError, match="no delivery 'nope'"):
        engine.webhooks.retry("nope")
    done = engine.webhooks.get(hook.id)
    assert (done.delivered, done.failures, done.failed, done.pending) == (1, 3, 0, 0)


def test_one_posts_changes_arrive_in_order(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    _post(engine, "poll-1", tmp_path, **POLL)
    _post(engine, "other", tmp_path, text="nice weather")
    engine.review.lock("poll-1", "alice")
    engine.review.decide("poll-1", "alice", "reject", reason="a quiz")
    receiver.fail_next("fail")  # the decision about poll-1 fails first
    deliverer = _deliverer(engine, batch=1)  # one at a time: poll-1's is the first sent
    report = deliverer.run_once()
    # The review of poll-1 waits behind its decision; the other post's goes on.
    assert len(report.retrying) == 1 and len(report.delivered) == 1
    assert [r.body["post_id"] for r in receiver.requests] == ["poll-1", "other"]
    clock.advance(minutes=1)
    deliverer.run_once()
    assert [(r.event, r.body["post_id"], r.answered) for r in receiver.requests] == [
        ("decision", "poll-1", 500),
        ("decision", "other", 200),
        ("decision", "poll-1", 200),
        ("review", "poll-1", 200),
    ]


# -- never lost ----------------------------------------------------------------------------


def test_a_rolled_back_decision_leaves_no_delivery(engine: Engine, receiver: Receiver) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    outcome = Outcome(Verdict.restrict, [], ["restrict"])
    good = NewDecision("a", outcome, '{"id": "a"}', "test", [])
    # The second of the batch cannot be stored (a time without a zone): the whole batch,
    # the first's decision and its delivery too, is rolled back.
    bad = NewDecision("b", outcome, '{"id": "b"}', "test", [], deadline=datetime(2026, 1, 1))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        engine.decisions.save([good, bad], now=engine.clock())
    assert engine.decisions.count() == 0 and _rows(engine) == []

    engine.decisions.save([good], now=engine.clock())
    (row,) = _rows(engine)
    assert json.loads(row.body)["post_id"] == "a"

    # emit writes on the caller's transaction: rolled back with it.
    with pytest.raises(RuntimeError), engine.db.begin() as conn:
        emit(conn, "appeal", {"post_id": "a", "client": "_local"}, now=engine.clock())
        assert len(conn.execute(sa.select(webhook_deliveries)).all()) == 2
        raise RuntimeError("the appeal could not be stored")
    assert len(_rows(engine)) == 1


def test_a_new_process_sends_what_an_earlier_one_left(
    database: str,
    tmp_path: Path,
    clock: Clock,
    receiver: Receiver,
    amber_process: Callable[..., Any],
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as first:
        first.webhooks.add(receiver.url, secret=SECRET)
        for n in range(3):
            _post(first, f"poll-{n}", tmp_path, **POLL)
        # Two senders claim them all and die before sending: their leases hold them.
        (claimed,) = _deliverer(first, owner="crashed-1").claim(1)
        assert len(_deliverer(first, owner="crashed-2").claim(10)) == 2
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as second:
        assert _deliverer(second).run_once().attempted == 0  # leased: not sent twice
        clock.advance(minutes=1)
        assert _deliverer(second).run_once().attempted == 0  # the lease is 2 minutes
    # A new process, an hour later by the real clock: every lease is over.
    done = amber_process("webhook", "deliver")
    assert done.returncode == 0, done.stderr
    assert "3 deliveries delivered" in done.stderr
    assert claimed.delivery in receiver.applied and len(receiver.applied) == 3
    assert all(r.signed for r in receiver.requests) and len(receiver.requests) == 3


def test_several_senders_at_once_send_each_delivery_once(
    engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    engine.webhooks.add(receiver.url, secret=SECRET)
    engine.decisions.save(
        [
            NewDecision(f"p{n:02}", Outcome(Verdict.allow, [], []), "{}", "test", [])
            for n in range(40)
        ],
        now=engine.clock(),
    )
    senders = [_deliverer(engine, owner=f"sender-{i}", batch=2) for i in range(3)]
    start = threading.Barrier(len(senders))
    reports = []

    def send(sender: Deliverer) -> None:
        start.wait()
        reports.append(sender.run_once())

    threads = [threading.Thread(target=send, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = Counter(r.delivery for r in receiver.requests)
    assert len(sent) == 40 and set(sent.values()) == {1}
    assert sorted(d for r in reports for d in r.delivered) == sorted(sent)
    assert sum(1 for r in reports if r.delivered) >= 2  # they shared the work
    (hook,) = engine.webhooks.all()
    assert (hook.delivered, hook.pending) == (40, 0)


# -- input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "is empty or has spaces"),
        ("ftp://example.com/x", "must start with https:// or http://"),
        ("example.com/hook", "must start with https:// or http://"),
        ("https:///hook", "has no host"),
        ("https://example.com:0/x", "has port 0"),
        ("https://example.com:99999/x", "not a valid URL"),
        ("https://example.com/x#frag", "has a #fragment"),
        ("https://exa mple.com/", "is empty or has spaces"),
    ],
)
def test_a_bad_url_is_refused_naming_it(engine: Engine, url: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        engine.webhooks.add(url, secret=SECRET)
    assert engine.webhooks.all() == []


def test_bad_events_secrets_and_states_are_refused(engine: Engine) -> None:
    url = "https://platform.example/hooks"
    with pytest.raises(UserError, match="event 'decisions' is unknown; use one of: decision"):
        engine.webhooks.add(url, secret=SECRET, events="decisions,review")
    with pytest.raises(UserError, match="no events given"):
        parse_events([])
    with pytest.raises(UserError, match="needs a secret"):
        engine.webhooks.add(url, secret=None)
    with pytest.raises(UserError, match="needs a secret"):
        engine.webhooks.add(url, secret="   ")
    with pytest.raises(UserError, match="9 characters long; give at least 16"):
        engine.webhooks.add(url, secret="too-short")
    with pytest.raises(UserError, match="delivery state 'dead' is unknown"):
        engine.webhooks.deliveries(state="dead")
    with pytest.raises(NotFoundError, match="no webhook 7"):
        engine.webhooks.remove(7)
    with pytest.raises(UserError, match="may not set event"), engine.db.begin() as conn:
        emit(conn, "decision", {"event": "x"}, now=engine.clock())
    with pytest.raises(UserError, match="event 'appeals' is unknown"), engine.db.begin() as conn:
        emit(conn, "appeals", {}, now=engine.clock())
    assert parse_events("order, decision") == parse_events(["decision", "order"])


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(timedelta(seconds=10), timedelta(minutes=5), random.Random(3))
    for failures, longest in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (30, 300)]:
        waits = {backoff.delay(failures) for _ in range(50)}
        assert all(timedelta(seconds=longest / 2) <= w <= timedelta(seconds=longest) for w in waits)
        assert len(waits) > 40  # jittered, not one fixed wait


# -- the command line and the API ----------------------------------------------------------


def test_the_command_line(
    amber_cli: Callable[..., CliResult],
    receiver: Receiver,
    write_posts: Callable[..., Path],
    database: str,
    tmp_path: Path,
) -> None:
    added = amber_cli("webhook", "add", receiver.url, "--secret", SECRET, "--events", "decision")
    assert added.returncode == 0, added.stderr
    hook_id = added.stdout.strip()
    assert hook_id.isdigit() and "takes decision" in added.stderr
    listed = amber_cli("webhook", "list", "--format", "jsonl")
    (hook,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert hook["url"] == receiver.url and SECRET not in listed.stdout

    posts = write_posts([{"id": "poll-1", **POLL}, {"id": "fine", "text": "nice weather"}])
    scanned = amber_cli("scan", posts)
    assert scanned.returncode == 0, scanned.stderr
    assert "2 webhook deliveries waiting in the outbox" in scanned.stderr
    pending = amber_cli("webhook", "deliveries", "--status", "pending", "--format", "jsonl")
    found = [json.loads(line) for line in pending.stdout.splitlines()]
    assert {d["post_id"] for d in found} == {"poll-1", "fine"}
    assert all(d["payload"]["delivery"] == d["delivery"] for d in found)

    receiver.fail_next("fail")
    first = amber_cli("webhook", "deliver")
    assert first.returncode == 1 and "next attempt at" in first.stderr, first.stderr
    assert "1 delivery delivered, 1 to retry, 0 failed" in first.stderr
    table = amber_cli("webhook", "deliveries")
    assert "HTTP 500: receiver broke" in table.stdout and "pending" in table.stdout

    # Failed for good (a sender that gives up at once), then retried by hand.
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        with engine.db.begin() as conn:  # its backoff over: due now
            conn.execute(webhook_deliveries.update().values(next_attempt_at=datetime.now(UTC)))
        receiver.fail_next("fail")
        report = engine.deliverer(max_attempts=1).run_once()
        ((dead, _),) = report.failed
    failed = amber_cli("webhook", "deliveries", "--status", "failed", "--format", "jsonl")
    assert [json.loads(line)["delivery"] for line in failed.stdout.splitlines()] == [dead]
    retried = amber_cli("webhook", "retry", dead)
    assert retried.returncode == 0 and "1 delivery pending again" in retried.stderr
    again = amber_cli("webhook", "retry", dead)
    assert again.returncode == 2 and "is pending, not failed" in again.stderr
    delivered = amber_cli("webhook", "deliver")
    assert delivered.returncode == 0 and "1 delivery delivered" in delivered.stderr
    assert set(receiver.applied) == {d["delivery"] for d in found}
    assert amber_cli("webhook", "retry", "--failed").stderr.startswith("0 deliveries")

    for args, message in (
        (("webhook", "add", "ftp://x/y", "--secret", SECRET), "must start with https://"),
        (("webhook", "add", receiver.url, "--secret", SECRET, "--events", "bans"), "event 'bans'"),
        (("webhook", "add", receiver.url), "needs a secret"),
        (("webhook", "add", receiver.url, "--secret", "short"), "give at least 16"),
        (("webhook", "deliveries", "--status", "dead"), "delivery state 'dead' is unknown"),
        (("webhook", "remove", "99"), "no webhook 99"),
        (("webhook", "retry"), "name failed deliveries to retry, or give --failed"),
        (("webhook", "retry", "nope"), "no delivery 'nope'"),
    ):
        result = amber_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr

    removed = amber_cli("webhook", "remove", hook_id)
    assert removed.returncode == 0 and f"webhook {hook_id}" in removed.stderr
    assert amber_cli("webhook", "list", "--format", "jsonl").stdout == ""


def test_the_http_api_metrics_and_the_servers_deliverer(
    engine: Engine, receiver: Receiver, tmp_path: Path, clock: Clock
) -> None:
    admin_secret = engine.tokens.create("admin", parse_scopes("admin"))[1]
    ingest_secret = engine.tokens.create("platform-a", parse_scopes("ingest"))[1]
    app = create_app(engine, deliver_every=None)
    admin = TestClient(app, headers={"authorization": f"Bearer {admin_secret}"})
    ingest = TestClient(app, headers={"authorization": f"Bearer {ingest_secret}"})
    assert ingest.get("/v1/webhooks").status_code == 403
    assert ingest.post("/v1/webhooks", json={"url": receiver.url}).status_code == 403

    bad = admin.post("/v1/webhooks", json={"url": receiver.url, "secret": SECRET, "events": ["x"]})
    assert bad.status_code == 400 and "event 'x' is unknown" in bad.json()["error"]["message"]
    missing = admin.post("/v1/webhooks", json={"url": receiver.url})
    assert missing.status_code == 400 and "needs a secret" in missing.json()["error"]["message"]
    created = admin.post(
        "/v1/webhooks", json={"url": receiver.url, "secret": SECRET, "client": "platform-a"}
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["client"] == "platform-a" and SECRET not in created.text
    assert admin.get(f"/v1/webhooks/{hook['id']}").json()["url"] == receiver.url
    assert admin.get("/v1/webhooks/999").status_code == 404
    assert [h["id"] for h in admin.get("/v1/webhooks").json()] == [hook["id"]]

    submitted = ingest.post("/v1/posts", json={"id": "poll-1", **POLL})
    assert submitted.status_code == 200, submitted.text
    (pending,) = admin.get("/v1/webhooks/deliveries", params={"status": "pending"}).json()
    assert pending["post_id"] == "poll-1" and pending["client"] == "platform-a"
    assert admin.get(f"/v1/webhooks/deliveries/{pending['delivery']}").json() == pending
    conflict = admin.post(f"/v1/webhooks/deliveries/{pending['delivery']}/retry")
    assert conflict.status_code == 409
    assert admin.get("/v1/webhooks/deliveries", params={"status": "x"}).status_code == 400
    assert admin.get("/v1/webhooks/deliveries/nope").status_code == 404

    receiver.fail_next("fail")
    _deliverer(engine, max_attempts=1).run_once()
    metrics = admin.get("/v1/metrics").text
    webhook = f'webhook="{hook["id"]}"'
    assert f"amber_webhook_failed{{{webhook}}} 1.0" in metrics
    assert f"amber_webhook_pending{{{webhook}}} 0.0" in metrics
    assert f"amber_webhook_failed_attempts_total{{{webhook}}} 1.0" in metrics
    assert f"amber_webhook_delivered_total{{{webhook}}} 0.0" in metrics
    (failed,) = admin.get("/v1/webhooks/deliveries", params={"status": "failed"}).json()
    assert failed["last_error"] == "HTTP 500: receiver broke"
    retried = admin.post("/v1/webhooks/deliveries/retry", json={"webhook": hook["id"]})
    assert retried.json() == {"retried": 1}
    clock.advance(minutes=5)
    metrics = admin.get("/v1/metrics").text
    assert f"amber_webhook_pending{{{webhook}}} 1.0" in metrics
    assert f"amber_webhook_oldest_pending_seconds{{{webhook}}} 300.0" in metrics

    # The server sends the outbox in the background while it runs.
    with TestClient(create_app(engine, deliver_every=0.05)):
        assert receiver.wait_for(1), "the server's deliverer sent nothing"
    assert list(receiver.applied) == [pending["delivery"]]
    deleted = admin.delete(f"/v1/webhooks/{hook['id']}")
    assert deleted.status_code == 200 and deleted.json()["removed"] is True
    assert admin.get("/v1/webhooks").json() == []
    assert admin.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
