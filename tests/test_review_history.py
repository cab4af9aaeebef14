"""Undo with a trail, on SQLite and PostgreSQL, on decisions the real engine made: a
reviewer's outcome reopened and changed with a reason (every step kept and shown), an
escalated item in the escalation queue until someone owns it, and a wrong "add to bank"
reverted entry by entry through the bank's own entry control (its audit naming the
reviewer), so the re-uploads it caught are no longer matched. Through the library,
``/v1/review`` and ``amber review``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, ScanResult, open_engine
from amber.errors import ConflictError, UserError
from amber.posts import parse_post
from amber.statements import Statements
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import CliResult, run_cli
from webhook_receiver import Receiver

SECRET = "whsec-" + "0123456789abcdef" * 2
POLL = {
    "author": "armed_group",
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "What should we do with him?", "options": ["Kill", "Let him go"]},
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Case:
    engine: Engine
    clock: Clock
    folder: Path
    database: str
    receiver: Receiver

    def post(self, post_id: str, **fields: Any) -> ScanResult:
        return self.engine.decide_post(parse_post({"id": post_id, **fields}, base=self.folder))

    def decide(self, post_id: str, reviewer: str, outcome: str, **options: Any) -> Any:
        self.engine.review.lock(post_id, reviewer)
        return self.engine.review.decide(post_id, reviewer, outcome, reason="checked", **options)


@pytest.fixture
def case(database: str, tmp_path: Path) -> Iterator[Case]:
    """``poll-1`` (a harm poll with two new photos, restricted), ``poll-2`` (restricted),
    an empty bank ``confirmed`` (remove) and a webhook to a real receiver. The clock is
    the real time's, so that the command line (on the real clock) sees the same."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    photo(61, 640, 480).save(tmp_path / "captive.png")
    photo(62, 640, 480).save(tmp_path / "flag.png")
    media = [{"path": "captive.png"}, {"path": "flag.png"}]
    with (
        open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine,
        Receiver(SECRET) as receiver,
    ):
        engine.webhooks.add(receiver.url, secret=SECRET, events="review")
        engine.banks.create("confirmed", label="execution-photo")
        found = Case(engine, clock, tmp_path, database, receiver)
        assert found.post("poll-1", **POLL, media=media).outcome.verdict == "restrict"
        assert found.post("poll-2", **POLL).outcome.verdict == "restrict"
        yield found


def test_an_outcome_is_reopened_and_changed_with_its_history_kept(case: Case) -> None:
    engine, history = case.engine, case.engine.history
    first = case.decide("poll-2", "alice", "confirm", action="keep_restricted")
    with pytest.raises(ConflictError, match="not awaiting review: it was confirmed; reopen it"):
        engine.review.decide("poll-2", "bob", "reject", reason="x")
    case.clock.now += timedelta(hours=1)
    with pytest.raises(UserError, match="needs a reason"):
        history.reopen("poll-2", "bob", reason=" ")
    step = history.reopen("poll-2", "bob", reason="the poll was a film quiz")
    assert step.outcome == "reopen" and step.refers_to == first.id and step.reviewer == "bob"
    assert engine.review.item("poll-2").state == "pending"
    assert "poll-2" in [i.post_id for i in engine.review.items()]
    with pytest.raises(ConflictError, match="cannot be reopened: it is awaiting review already"):
        history.reopen("poll-2", "carol", reason="again")
    # The statement of alice's confirmation stays in force until the new outcome.
    assert [s.status for s in Statements.of(engine).for_post("poll-2")] == [
        "superseded",
        "in_force",
    ]
    case.clock.now += timedelta(hours=1)
    last = case.decide("poll-2", "carol", "reject")
    steps = history.steps("poll-2")
    assert [(s.outcome.value, s.reviewer) for s in steps] == [
        ("confirm", "alice"),
        ("reopen", "bob"),
        ("reject", "carol"),
    ]
    assert steps[0] == first and steps[0].reason == "checked" and steps[-1] == last
    assert [s.status for s in Statements.of(engine).for_post("poll-2")] == [
        "superseded",
        "reversed",
    ]
    engine.deliverer().run_once()
    told = [r.body for r in case.receiver.requests if r.body["post_id"] == "poll-2"]
    assert [(b["review"]["outcome"], b["review_state"]) for b in told] == [
        ("confirm", "confirmed"),
        ("reopen", "pending"),
        ("reject", "rejected"),
    ]
    assert told[1]["review"]["refers_to"] == first.id
    # An open appeal is decided as an appeal, not reopened behind its back.
    case.decide("poll-1", "alice", "confirm", action="remove")
    appeal = engine.appeals.file("poll-1", "a quiz", filed_by="t")
    with pytest.raises(ConflictError, match=f"open appeal \\({appeal.id}\\); decide the appeal"):
        history.reopen("poll-1", "bob", reason="hm")


def test_an_escalated_item_waits_in_the_escalation_queue_until_someone_owns_it(
    case: Case,
) -> None:
    engine, escalations = case.engine, case.engine.escalations
    escalated = case.decide("poll-2", "alice", "escalate")
    assert "poll-2" not in [i.post_id for i in engine.review.items()]
    (waiting,) = escalations.items()
    assert waiting.item.post_id == "poll-2" and waiting.owner is None
    assert waiting.escalated == escalated
    assert waiting.to_json()["escalation"]["by"] == "alice"
    with pytest.raises(ConflictError, match="escalated and nobody owns it"):
        engine.review.decide("poll-2", "bob", "reject", reason="x")

    case.clock.now += timedelta(minutes=5)
    owned = escalations.own("poll-2", "bob", reason="legal is mine")
    assert escalations.own("poll-2", "bob") == owned  # owning it again changes nothing
    with pytest.raises(ConflictError, match="owned by 'bob' since"):
        escalations.own("poll-2", "carol")
    with pytest.raises(ConflictError, match="owned by 'bob'; only its owner decides it"):
        engine.review.decide("poll-2", "carol", "reject", reason="x")
    assert escalations.items(owned=False) == []
    (mine,) = escalations.items(owned=True)
    assert mine.owner == owned and mine.to_json()["escalation"]["owner"] == "bob"
    with pytest.raises(ConflictError, match="is not escalated"):
        escalations.own("poll-1", "bob")

    # Escalated again, it is back without an owner; the new owner decides without a lock.
    engine.review.decide("poll-2", "bob", "escalate", reason="needs the authorities")
    assert [e.owner for e in escalations.items()] == [None]
    escalations.own("poll-2", "carol")
    done = engine.review.decide(
        "poll-2", "carol", "confirm", action="remove", reason="reported to police"
    )
    assert done.outcome == "confirm" and escalations.items() == []
    assert [s.outcome.value for s in engine.history.steps("poll-2")] == [
        "escalate",
        "own",
        "escalate",
        "own",
        "confirm",
    ]


def test_a_wrong_add_to_bank_is_reverted_entry_by_entry(case: Case) -> None:
    engine, history = case.engine, case.engine.history
    confirmed = case.decide("poll-1", "alice", "confirm", action="remove", bank="confirmed")
    assert len(confirmed.entries) == 2 and confirmed.bank == "confirmed"
    assert history.banked("poll-1") == dict.fromkeys(confirmed.entries, "confirmed")
    added = [e for e in engine.banks.audit("confirmed") if e.action == "add"]
    assert {(e.entry, e.actor) for e in added} == {
        (entry, "reviewer:alice") for entry in confirmed.entries
    }
    # Both photos' re-uploads are now removed.
    assert case.post("re-captive", media=[{"path": "captive.png"}]).outcome.verdict == "remove"
    assert case.post("re-flag", media=[{"path": "flag.png"}]).outcome.verdict == "remove"

    first, second = sorted(confirmed.entries)
    with pytest.raises(UserError, match="bank entry 999 was not added by a review"):
        history.unbank("poll-1", "bob", reason="x", entries=[999])
    with pytest.raises(UserError, match="needs a reason"):
        history.unbank("poll-1", "bob", reason="")
    (step,) = history.unbank("poll-1", "bob", reason="the flag is news footage", entries=[second])
    assert step.outcome == "unbank" and step.entries == (second,) and step.bank == "confirmed"
    assert step.refers_to == confirmed.id
    (gone,) = [e for e in engine.banks.audit("confirmed") if e.action == "delete_entry"]
    assert gone.entry == second and gone.actor == "reviewer:bob"
    assert engine.banks.get("confirmed").entries == 1
    assert history.banked("poll-1") == {first: "confirmed"}
    assert case.post("re-flag-2", media=[{"path": "flag.png"}]).outcome.verdict == "allow"
    assert case.post("re-captive-2", media=[{"path": "captive.png"}]).outcome.verdict == "remove"

    # The other entry, deleted in the bank by someone else meanwhile, is reverted as gone.
    engine.banks.delete_entry("confirmed", first, actor="cli:curator")
    (rest,) = history.unbank("poll-1", "bob", reason="the whole banking was wrong")
    assert rest.entries == (first,)
    assert [e.actor for e in engine.banks.audit("confirmed") if e.action == "delete_entry"] == [
        "reviewer:bob",
        "cli:curator",
    ]
    with pytest.raises(ConflictError, match="no bank entries added by a review of post 'poll-1'"):
        history.unbank("poll-1", "bob", reason="again")
    # The post's outcome is untouched: unbanking reverts the bank, not the decision.
    assert engine.review.item("poll-1").state == "confirmed"
    assert [s.outcome.value for s in history.steps("poll-1")] == ["confirm", "unbank", "unbank"]


# -- HTTP and the command line -----------------------------------------------------------


def test_the_http_api(case: Case) -> None:
    app = create_app(case.engine, media_root=case.folder, deliver_every=None)
    http = {}
    for name, scopes in (("alice", "review"), ("bob", "review"), ("platform", "ingest")):
        secret = case.engine.tokens.create(name, parse_scopes(scopes))[1]
        http[name] = TestClient(app, headers={"authorization": f"Bearer {secret}"})
    case.decide("poll-1", "alice", "confirm", action="remove", bank="confirmed")
    case.decide("poll-2", "alice", "escalate")

    assert http["platform"].get("/v1/review/poll-1/history").status_code == 403
    got = http["bob"].get("/v1/review/poll-1/history").json()
    assert got["state"] == "confirmed" and got["owner"] is None and got["appeals"] == []
    assert [s["outcome"] for s in got["history"]] == ["confirm"]
    assert sorted(b["entry"] for b in got["banked"]) == sorted(got["history"][0]["entries"])

    unbanked = http["bob"].post("/v1/review/poll-1/unbank", json={"reason": "wrong banking"})
    assert unbanked.status_code == 200 and len(unbanked.json()[0]["entries"]) == 2
    again = http["bob"].post("/v1/review/poll-1/unbank", json={"reason": "again"})
    assert again.status_code == 409
    stray = http["bob"].post("/v1/review/poll-1/unbank", json={"reason": "x", "entries": [7]})
    assert stray.status_code in (400, 409)
    reopened = http["bob"].post("/v1/review/poll-1/reopen", json={"reason": "a film quiz"})
    assert reopened.status_code == 200 and reopened.json()["outcome"] == "reopen"
    twice = http["bob"].post("/v1/review/poll-1/reopen", json={"reason": "again"})
    assert twice.status_code == 409 and "awaiting review" in twice.json()["error"]["message"]
    assert http["bob"].post("/v1/review/poll-1/reopen", json={}).status_code == 422

    queue = http["bob"].get("/v1/review/escalations").json()
    assert [(e["post_id"], e["escalation"]["owner"]) for e in queue] == [("poll-2", None)]
    assert http["bob"].post("/v1/review/poll-2/own", json={}).status_code == 200
    taken = http["alice"].post("/v1/review/poll-2/own", json={})
    assert taken.status_code == 409 and "owned by 'bob'" in taken.json()["error"]["message"]
    assert http["bob"].get("/v1/review/escalations", params={"owned": False}).json() == []
    decided = http["bob"].post(
        "/v1/review/poll-2/decision", json={"outcome": "reject", "reason": "a quiz"}
    )
    assert decided.status_code == 200 and decided.json()["outcome"] == "reject"
    assert http["bob"].get("/v1/review/escalations").json() == []
    steps = http["alice"].get("/v1/review/poll-2/history").json()["history"]
    assert [(s["outcome"], s["reviewer"]) for s in steps] == [
        ("escalate", "alice"),
        ("own", "bob"),
        ("reject", "bob"),
    ]
    assert http["bob"].get("/v1/review/nope/history").status_code == 404


def _cli(case: Case, *args: str) -> CliResult:
    env = {"AMBER_DB": case.database, "AMBER_VAULT": str(case.folder / "vault")}
    return run_cli(*args, env=env)


def test_the_command_line(case: Case) -> None:
    case.decide("poll-1", "alice", "confirm", action="remove", bank="confirmed")
    case.decide("poll-2", "alice", "escalate")
    shown = _cli(case, "review", "history", "poll-1")
    assert shown.returncode == 0, shown.stderr
    assert "review confirmed" in shown.stdout and "bank confirmed" in shown.stdout
    assert "still in banks: entry" in shown.stdout

    entry = str(case.engine.history.steps("poll-1")[0].entries[0])
    done = _cli(
        case, "review", "unbank", "poll-1", "--reviewer", "bob", "--reason", "x", "--entry", entry
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"confirmed\t{entry}" and "1 entry of bank" in done.stderr
    reopened = _cli(case, "review", "reopen", "poll-1", "--reviewer", "bob", "--reason", "quiz")
    assert reopened.returncode == 0 and "back in the review queue" in reopened.stderr
    as_json = _cli(case, "review", "history", "poll-1", "--format", "json")
    assert '"outcome": "reopen"' in as_json.stdout and '"state": "pending"' in as_json.stdout

    listed = _cli(case, "review", "escalations", "--unowned")
    assert listed.returncode == 0 and "poll-2" in listed.stdout and "alice" in listed.stdout
    owned = _cli(case, "review", "own", "poll-2", "--reviewer", "bob")
    assert owned.returncode == 0 and "owned by bob" in owned.stderr
    assert "poll-2" not in _cli(case, "review", "escalations", "--unowned").stdout

    for args, message in (
        (("own", "poll-2", "--reviewer", "carol"), "owned by 'bob'"),
        (("reopen", "poll-1", "--reviewer", "bob", "--reason", "again"), "awaiting review"),
        (("unbank", "poll-2", "--reviewer", "bob", "--reason", "x"), "no bank entries"),
        (("history", "nope"), "no decision for post 'nope'"),
    ):
        refused = _cli(case, "review", *args)
        assert refused.returncode == 2, (args, refused)
        assert refused.stderr.startswith("Error: ") and message in refused.stderr
        assert "Traceback" not in refused.stderr
    missing = _cli(case, "review", "reopen", "poll-1", "--reason", "x")
    assert missing.returncode == 2 and "--reviewer" in missing.stderr
