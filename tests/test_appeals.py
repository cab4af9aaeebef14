"""Appeals (EU DSA Art. 20) on SQLite and PostgreSQL: posts decided by the real engine
(a harm poll amber restricts, a photo a bank removes, a reviewer's confirmation), appeals
filed and refused by rule (not restricted, too late, one open at a time, the reviewer who
decided the post), and a reversal that restores the post everywhere: the decision's
review state, the statement of reasons (checked against the Transparency Database's
schema with jsonschema), the evidence's custody log and the webhook, delivered to a real
receiver that checks its signature. Through the library, ``/v1/appeals`` and ``amber
appeal``. The clock is injected: no test waits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, ScanResult, open_engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.posts import parse_post
from amber.review.appeals import add_months
from amber.statements import Statements
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import CliResult, run_cli
from webhook_receiver import Receiver

SECRET = "whsec-" + "0123456789abcdef" * 2
DAY1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
POLL = {
    "author": "armed_group",
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "What should we do with him?", "options": ["Kill", "Let him go"]},
}
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "src" / "amber" / "statements_schema.json").read_text(
        encoding="utf-8"
    )
)
ONE = jsonschema.Draft202012Validator(
    {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/statement"},
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)


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

    def confirm(self, post_id: str, reviewer: str, action: str = "keep_restricted") -> None:
        self.engine.review.lock(post_id, reviewer)
        self.engine.review.decide(post_id, reviewer, "confirm", action=action, reason="checked")

    def custody(self, post_id: str, event: str) -> list[dict[str, Any]]:
        return [
            e.record
            for e in self.engine.open_vault().log.entries
            if e.record.get("post_id") == post_id and e.record.get("event") == event
        ]

    def delivered(self, event: str) -> list[dict[str, Any]]:
        self.engine.deliverer().run_once()
        assert all(r.signed for r in self.receiver.requests)
        return [r.body for r in self.receiver.requests if r.event == event]


@pytest.fixture
def case(database: str, tmp_path: Path) -> Iterator[Case]:
    """An engine on a clock at DAY1 with a webhook to a real receiver; a bank ``known``
    (remove) of one photo; ``poll-1`` restricted (a harm poll), ``match`` removed (the
    banked photo) and ``hello`` allowed."""
    clock = Clock(DAY1)
    photo(50, 640, 480).save(tmp_path / "known.png")
    with (
        open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine,
        Receiver(SECRET) as receiver,
    ):
        engine.webhooks.add(receiver.url, secret=SECRET)
        engine.banks.create("known", label="execution-photo")
        engine.banks.add_files("known", [tmp_path / "known.png"])
        found = Case(engine, clock, tmp_path, database, receiver)
        assert found.post("poll-1", **POLL).outcome.verdict == "restrict"
        assert found.post("match", media=[{"path": "known.png"}]).outcome.verdict == "remove"
        assert found.post("hello", text="hello").outcome.verdict == "allow"
        yield found


def test_an_appeal_is_filed_against_the_restriction_in_force(case: Case) -> None:
    engine = case.engine
    case.clock.now += timedelta(hours=2)
    appeal = engine.appeals.file("poll-1", "  It was a film quiz.  ", filed_by="token:platform")
    (statement,) = Statements.of(engine).for_post("poll-1")
    assert appeal.status == "open" and appeal.text == "It was a film quiz."
    assert appeal.statement == statement.puid and appeal.decision_at == DAY1
    assert appeal.due_at == case.clock.now + timedelta(days=14)
    assert appeal.to_json()["appealable_until"] == "2027-06-01T10:00:00+00:00"
    assert appeal.to_json()["outcome"] is None and appeal.version == 1
    (logged,) = case.custody("poll-1", "appealed")
    assert logged["statement"] == statement.puid and logged["actor"].startswith("token:platform")
    assert logged["text_sha256"] == hashlib.sha256(b"It was a film quiz.").hexdigest()
    assert engine.appeals.get(appeal.id) == appeal
    assert [a.id for a in engine.appeals.find(status="open")] == [appeal.id]
    # A removal by a bank is a restriction too.
    case.clock.now += timedelta(minutes=1)
    removed = engine.appeals.file("match", "not my photo", filed_by="cli:someone")
    assert removed.statement.startswith("match-v1-scan-remove-")
    # Open ones come by their target date.
    assert [a.post_id for a in engine.appeals.find()] == ["poll-1", "match"]


def test_appeals_are_refused_naming_the_rule(case: Case) -> None:
    engine = case.engine
    with pytest.raises(ConflictError, match="'hello' cannot be appealed: amber did not restrict"):
        engine.appeals.file("hello", "why?", filed_by="t")
    with pytest.raises(NotFoundError, match="no decision for post 'nope'"):
        engine.appeals.file("nope", "why?", filed_by="t")
    with pytest.raises(UserError, match="needs the user's text"):
        engine.appeals.file("poll-1", "   ", filed_by="t")
    with pytest.raises(UserError, match="at most 10000"):
        engine.appeals.file("poll-1", "x" * 10_001, filed_by="t")

    # Six calendar months after the decision, to the second (DSA Art. 20(1)).
    case.clock.now = add_months(DAY1, 6) + timedelta(seconds=1)
    with pytest.raises(ConflictError, match=r"no longer be appealed.*until 2027-06-01.*20\(1\)"):
        engine.appeals.file("poll-1", "late", filed_by="t")
    case.clock.now = add_months(DAY1, 6)
    first = engine.appeals.file("poll-1", "just in time", filed_by="t")

    with pytest.raises(ConflictError, match=f"open appeal already \\({first.id},"):
        engine.appeals.file("poll-1", "again", filed_by="t")
    engine.appeals.decide(first.id, "bob", "uphold", reason="a real vote on a life")
    # Decided: the user may appeal again (one open at a time, not one ever).
    assert engine.appeals.file("poll-1", "please look again", filed_by="t").status == "open"

    # A restriction a reviewer lifted is not there to appeal.
    case.post("poll-2", **POLL)
    engine.review.lock("poll-2", "carol")
    engine.review.decide("poll-2", "carol", "reject", reason="a quiz")
    with pytest.raises(ConflictError, match="'poll-2' cannot be appealed: its restriction was"):
        engine.appeals.file("poll-2", "thanks anyway", filed_by="t")
    assert add_months(DAY1, 1) == datetime(2027, 1, 1, 10, tzinfo=UTC)
    assert add_months(datetime(2026, 8, 31, tzinfo=UTC), 6) == datetime(2027, 2, 28, tzinfo=UTC)


def test_a_reviewer_who_decided_the_post_may_not_decide_its_appeal(case: Case) -> None:
    engine = case.engine
    case.confirm("poll-1", "alice")
    case.clock.now += timedelta(days=1)
    appeal = engine.appeals.file("poll-1", "It was a film quiz.", filed_by="token:platform")
    assert appeal.statement.startswith("poll-1-v1-review-")  # alice's confirmation
    assert engine.appeals.deciders(appeal) == ["alice"]
    with pytest.raises(ConflictError, match="'alice' decided post 'poll-1' and may not decide"):
        engine.appeals.decide(appeal.id, "alice", "reverse", reason="mine was wrong")
    with pytest.raises(UserError, match="appeal outcome 'maybe' is unknown"):
        engine.appeals.decide(appeal.id, "bob", "maybe", reason="x")
    with pytest.raises(UserError, match="needs a reason"):
        engine.appeals.decide(appeal.id, "bob", "uphold", reason=" ")

    case.clock.now += timedelta(hours=3)
    upheld = engine.appeals.decide(appeal.id, "bob", "uphold", reason="a vote on a life")
    assert upheld.status == "upheld" and upheld.action is None and upheld.reviewer == "bob"
    with pytest.raises(ConflictError, match=f"appeal {appeal.id} was upheld already, by 'bob'"):
        engine.appeals.decide(appeal.id, "carol", "reverse", reason="no")
    # The restriction stands: the review's statement is still in force.
    assert [s.status for s in Statements.of(engine).for_post("poll-1")] == [
        "superseded",
        "in_force",
    ]
    assert engine.review.item("poll-1").state == "confirmed"
    (told,) = case.delivered("appeal")
    assert told["appeal"]["outcome"] == "uphold" and told["appeal"]["action"] is None
    assert told["review_state"] == "confirmed" and told["post_id"] == "poll-1"
    (logged,) = case.custody("poll-1", "appeal_decided")
    assert logged["outcome"] == "uphold" and logged["actor"].startswith("reviewer bob")


def test_a_reversal_restores_the_post_everywhere(case: Case) -> None:
    """The case's last step: the poll amber restricted is appealed and reversed: the
    platform is told to restore it, the decision says so, the statement ends, the custody
    log has both acts, and a later scan does not undo it."""
    engine = case.engine
    appeal = engine.appeals.file("poll-1", "It was a film quiz.", filed_by="token:platform")
    engine.review.lock("poll-1", "carol")  # a reviewer was looking at it meanwhile
    case.clock.now += timedelta(days=2)
    reversed_ = engine.appeals.decide(appeal.id, "bob", "reverse", reason="a quiz about a film")
    assert reversed_.status == "reversed" and reversed_.action == "restore"

    # The decision: reversed, out of the review queue, the reviewer's lock gone.
    decision = engine.decisions.get("poll-1")
    assert decision.review_state == "reversed" and decision.verdict == "restrict"
    assert "poll-1" not in [i.post_id for i in engine.review.items()]
    with pytest.raises(ConflictError, match="not awaiting review: it was reversed"):
        engine.review.decide("poll-1", "carol", "confirm", action="remove", reason="x")

    # The statement: reversed, its end date the day of the reversal, valid for the database.
    (statement,) = Statements.of(engine).for_post("poll-1")
    assert statement.status == "reversed" and statement.ended_at == case.clock.now
    fields = statement.to_submission()
    assert fields["end_date_visibility_restriction"] == "2026-12-03"
    assert [e.message for e in ONE.iter_errors(fields)] == []

    # The custody log: the appeal and its outcome, on the item of the version appealed.
    assert [e["appeal"] for e in case.custody("poll-1", "appeal_decided")] == [appeal.id]
    (decided,) = case.custody("poll-1", "appeal_decided")
    assert decided["action"] == "restore" and decided["reason"] == "a quiz about a film"
    assert len(case.custody("poll-1", "appealed")) == 1

    # The webhook: event appeal, the decision's new state and the outcome, signed.
    (told,) = case.delivered("appeal")
    assert told["review_state"] == "reversed" and told["verdict"] == "restrict"
    assert told["appeal"]["id"] == appeal.id and told["appeal"]["outcome"] == "reverse"
    assert told["appeal"]["action"] == "restore" and told["appeal"]["reviewer"] == "bob"
    assert told["occurred_at"] == case.clock.now.isoformat()

    # A rescan of the same content keeps the reversal; the post cannot be appealed again.
    case.post("poll-1", **POLL)
    assert engine.decisions.get("poll-1").review_state == "reversed"
    with pytest.raises(ConflictError, match="restriction was lifted on 2026-12-03"):
        engine.appeals.file("poll-1", "thanks", filed_by="t")


def test_an_appeal_of_a_version_replaced_since_restores_nothing(case: Case) -> None:
    engine = case.engine
    appeal = engine.appeals.file("poll-1", "It was a film quiz.", filed_by="token:platform")
    case.clock.now += timedelta(hours=1)
    assert case.post("poll-1", text="edited: nice weather").outcome.verdict == "allow"
    done = engine.appeals.decide(appeal.id, "bob", "reverse", reason="a quiz")
    assert done.status == "reversed" and done.action is None
    assert engine.decisions.get("poll-1").review_state == "none"  # version 2's, untouched
    assert [s.status for s in Statements.of(engine).for_post("poll-1")] == ["superseded"]


# -- HTTP ------------------------------------------------------------------------------


@pytest.fixture
def http(case: Case) -> dict[str, TestClient]:
    app = create_app(case.engine, media_root=case.folder, deliver_every=None)
    clients = {}
    for name, scopes in (
        ("platform", "ingest"),
        ("other", "ingest"),
        ("alice", "review"),
        ("bob", "review"),
    ):
        secret = case.engine.tokens.create(name, parse_scopes(scopes))[1]
        clients[name] = TestClient(app, headers={"authorization": f"Bearer {secret}"})
    return clients


def test_the_http_api(case: Case, http: dict[str, TestClient]) -> None:
    filed = http["platform"].post("/v1/appeals", json={"post_id": "poll-1", "text": "a quiz"})
    assert filed.status_code == 201, filed.text
    appeal = filed.json()
    assert appeal["status"] == "open" and appeal["filed_by"] == "token:platform"
    again = http["platform"].post("/v1/appeals", json={"post_id": "poll-1", "text": "again"})
    assert again.status_code == 409 and "open appeal already" in again.json()["error"]["message"]
    allowed = http["platform"].post("/v1/appeals", json={"post_id": "hello", "text": "?"})
    assert allowed.status_code == 409 and "cannot be appealed" in allowed.json()["error"]["message"]
    unknown = http["platform"].post("/v1/appeals", json={"post_id": "nope", "text": "?"})
    assert unknown.status_code == 404
    missing = http["platform"].post("/v1/appeals", json={"post_id": "poll-1"})
    assert missing.status_code == 422 and "text" in missing.json()["error"]["message"]
    assert http["alice"].post("/v1/appeals", json={"post_id": "x", "text": "y"}).status_code == 403

    # Another platform's token sees neither the post nor its appeals; reviewers see all.
    posted = http["other"].post("/v1/posts", json={"id": "words", **POLL})
    assert posted.status_code == 200 and posted.json()["verdict"] == "restrict"
    theirs = http["other"].post("/v1/appeals", json={"post_id": "words", "text": "mine"})
    assert theirs.status_code == 201 and theirs.json()["client"] == "other"
    assert (
        http["platform"]
        .post("/v1/appeals", json={"post_id": "words", "text": "not mine"})
        .status_code
        == 404
    )
    assert http["platform"].get(f"/v1/appeals/{theirs.json()['id']}").status_code == 404
    assert [a["post_id"] for a in http["platform"].get("/v1/appeals").json()] == ["poll-1"]
    listed = http["alice"].get("/v1/appeals", params={"status": "open"}).json()
    assert sorted(a["post_id"] for a in listed) == ["poll-1", "words"]
    bad = http["alice"].get("/v1/appeals", params={"status": "closed"})
    assert bad.status_code == 400 and "status 'closed' is unknown" in bad.json()["error"]["message"]

    # Deciding: reviewers only; the one who decided the post is refused, naming the rule.
    case.engine.review.lock("words", "alice")
    case.engine.review.decide("words", "alice", "confirm", action="remove", reason="a vote")
    route = f"/v1/appeals/{theirs.json()['id']}/decision"
    body = {"outcome": "reverse", "reason": "a quiz"}
    assert http["other"].post(route, json=body).status_code == 403
    refused = http["alice"].post(route, json=body)
    assert refused.status_code == 409
    assert "'alice' decided post 'words' and may not decide" in refused.json()["error"]["message"]
    done = http["bob"].post(route, json=body)
    assert done.status_code == 200 and done.json()["action"] == "restore"
    decided = http["other"].get(f"/v1/appeals/{theirs.json()['id']}").json()
    assert decided["status"] == "reversed" and decided["reviewer"] == "bob"
    review = http["other"].get("/v1/decisions/words").json()["review"]
    assert review["state"] == "reversed"
    assert http["bob"].post(route, json=body).status_code == 409
    wrong = http["bob"].post(f"/v1/appeals/{appeal['id']}/decision", json={"outcome": "x"})
    assert wrong.status_code == 422
    assert http["bob"].get("/v1/appeals/999999").status_code == 404


# -- the command line --------------------------------------------------------------------


def _cli(case: Case, *args: str) -> CliResult:
    env = {"AMBER_DB": case.database, "AMBER_VAULT": str(case.folder / "vault")}
    return run_cli(*args, env=env)


def test_the_command_line(case: Case) -> None:
    """``amber appeal`` runs on the real clock: the post it appeals is decided now."""
    case.clock.now = datetime.now(UTC)
    case.post("poll-2", **POLL)
    case.confirm("poll-2", "alice")
    filed = _cli(case, "appeal", "file", "poll-2", "--text", "It was a film quiz.")
    assert filed.returncode == 0, filed.stderr
    appeal_id = filed.stdout.strip()
    assert f"appeal {appeal_id} against the restriction of post 'poll-2' filed" in filed.stderr

    listed = _cli(case, "appeal", "list", "--status", "open")
    assert listed.returncode == 0 and "poll-2" in listed.stdout
    assert "13 days left" in listed.stdout  # two weeks from now: the real clock
    jsonl = _cli(case, "appeal", "list", "--format", "jsonl")
    assert [json.loads(line)["id"] for line in jsonl.stdout.splitlines()] == [int(appeal_id)]

    shown = _cli(case, "appeal", "show", appeal_id, "--format", "json")
    assert json.loads(shown.stdout)["barred"] == ["alice"]
    assert "may not decide" in _cli(case, "appeal", "show", appeal_id).stdout

    for args, message in (
        (("decide", appeal_id, "reverse", "--reviewer", "alice", "--reason", "x"), "may not"),
        (("decide", appeal_id, "pardon", "--reviewer", "bob", "--reason", "x"), "unknown"),
        (("file", "hello", "--text", "why"), "cannot be appealed"),
        (("show", "12345"), "no appeal 12345"),
        (("list", "--status", "closed"), "status 'closed' is unknown"),
    ):
        refused = _cli(case, "appeal", *args)
        assert refused.returncode == 2, (args, refused)
        assert refused.stderr.startswith("Error: ") and message in refused.stderr
        assert "Traceback" not in refused.stderr

    done = _cli(
        case, "appeal", "decide", appeal_id, "reverse", "--reviewer", "bob", "--reason", "a quiz"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reversed" and "post 'poll-2' restored" in done.stderr
    assert case.engine.decisions.get("poll-2").review_state == "reversed"
