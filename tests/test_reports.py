"""User reports: POST /v1/reports from the platform on a user's behalf puts a post amber
allowed in review, queued by its category's urgency (a threat to life first); the post's
decision carries the report (and its webhook tells the platform); reports stay with the
post through rescans and new versions, are listed by the time they arrived (the
transparency report's notices), and bad input is refused naming what and where."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.dsa import problems
from amber.engine import Engine, open_engine
from amber.errors import NotFoundError, UserError
from amber.posts import parse_post
from amber.reports import ReportStore
from amber.statements import Statements
from amber.tokens import parse_scopes
from conftest import CliResult, Clock, run_at_once

SECRET = "whsec-" + "0123456789abcdef" * 2


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as eng:
        yield eng


def decide(engine: Engine, post: dict[str, object], client: str = "_local") -> str:
    result = engine.decide_post(parse_post(post, base=Path("."), source="test"), client=client)
    return result.outcome.verdict.value


def test_a_report_on_a_post_amber_allowed_puts_it_in_review(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    engine.webhooks.add("https://platform.example/amber", secret=SECRET, events="decision")
    image = photo_file(3)
    assert (
        decide(engine, {"id": "p", "author": "a", "text": "look", "media": [{"path": str(image)}]})
        == "allow"
    )
    assert engine.review.items() == []
    filed = engine.report(
        "p", category="violence", text="this shows someone being beaten", reporter="user-17"
    )
    assert filed.new
    decision = engine.decisions.get("p")
    assert decision.verdict.value == "review" and decision.review_state == "pending"
    assert decision.actions == ["review"]
    [reason] = decision.reasons
    assert reason["signal"] == "user_report" and reason["rule"] == "user-report"
    assert reason["label"] == "violence" and reason["detail"] == "this shows someone being beaten"
    assert reason["report"] == {
        "id": filed.report.id,
        "reporter": "user-17",
        "received_at": "2026-03-01T12:00:00+00:00",
    }
    [item] = engine.review.items()
    assert item.post_id == "p" and item.reasons == decision.reasons
    assert item.deadline is None  # violence waits its turn by severity and age
    # The platform hears of it as a changed decision, with the report in its reasons.
    [told] = engine.webhooks.deliveries(post_id="p", event="decision")[:1]
    assert json.loads(told.body)["reasons"][0]["report"]["id"] == filed.report.id
    # Its evidence is kept as for any post in review, media read where the scan read them.
    assert engine.with_evidence(decision).evidence == "preserved"
    # The same reporter again in the same category is the same report.
    again = engine.report("p", category="violence", text="again!", reporter="user-17")
    assert not again.new and again.report.id == filed.report.id
    assert len(engine.decisions.get("p").reasons) == 1


def test_reports_are_queued_by_urgency_threat_to_life_first(
    engine: Engine, photo_file: Callable[..., Path], clock: Clock
) -> None:
    hide = photo_file(1)
    engine.banks.create("hide", action="restrict")
    engine.banks.add_files("hide", [hide])
    decide(engine, {"id": "restricted", "media": [{"path": str(hide)}]})  # no deadline
    for post_id in ("spam", "extremist", "threat", "self-harm"):
        decide(engine, {"id": post_id, "text": f"post {post_id}"})
    engine.report("spam", category="other", text="spam")
    clock.advance(minutes=1)
    engine.report("extremist", category="terrorism", text="recruiting")
    clock.advance(minutes=1)
    engine.report("threat", category="threat_to_life", text="he says he will kill her tonight")
    clock.advance(minutes=30)
    engine.report("self-harm", category="self_harm", text="says goodbye")
    order = [i.post_id for i in engine.review.items()]
    # Deadlines first (the category's hours after the report), then by severity and age.
    assert order == ["threat", "self-harm", "extremist", "restricted", "spam"]
    threat = engine.review.item("threat")
    assert threat.deadline == datetime(2026, 3, 1, 13, 2, tzinfo=UTC)


def test_reports_stay_with_the_post_and_are_listed_by_when_they_arrived(
    engine: Engine, clock: Clock, tmp_path: Path
) -> None:
    decide(engine, {"id": "p", "text": "v1"})
    first = engine.report("p", category="hate", text="slur", reporter="u1").report
    clock.advance(days=2)
    second = engine.report("p", category="harassment", text="targets me", reporter="u2").report
    decide(engine, {"id": "p", "text": "v1"})  # a rescan of the same content
    assert {r["report"]["id"] for r in engine.decisions.get("p").reasons} == {first.id, second.id}
    decide(engine, {"id": "p", "text": "v2, edited"})  # a new version: still reported
    current = engine.decisions.get("p")
    assert current.version == 2 and current.verdict.value == "review"
    assert {r["report"]["id"] for r in current.reasons} == {first.id, second.id}
    store = ReportStore(engine.db)
    assert [r.report.id for r in store.find()] == [second.id, first.id]  # newest first
    day_one = store.find(
        since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 3, 2, tzinfo=UTC)
    )
    assert [r.report.id for r in day_one] == [first.id]
    assert store.counts(
        since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2027, 1, 1, tzinfo=UTC)
    ) == {"harassment": 1, "hate": 1}
    assert store.get(first.id).to_json()["reporter"] == "u1"
    with pytest.raises(NotFoundError):
        store.get("0" * 32)
    with pytest.raises(UserError, match="since '2026-03-01T00:00:00' has no time zone"):
        store.find(since=datetime(2026, 3, 1))


def test_bad_reports_are_refused_naming_what(engine: Engine) -> None:
    decide(engine, {"id": "p", "text": "hello"})
    with pytest.raises(
        UserError, match="report category 'rude' is unknown; use one of: threat_to_life"
    ):
        engine.report("p", category="rude", text="x")
    with pytest.raises(UserError, match="report text is 5001 characters long; at most 5000"):
        engine.report("p", category="other", text="x" * 5001)
    with pytest.raises(UserError, match="report reporter is empty"):
        engine.report("p", category="other", text="x", reporter=" ")
    with pytest.raises(NotFoundError, match="no decision for post 'never'"):
        engine.report("never", category="other", text="x")
    assert engine.decisions.get("p").reasons == []  # nothing was stored


def test_post_v1_reports_from_the_platform(engine: Engine, photo_file: Callable[..., Path]) -> None:
    platform = engine.tokens.create("platform", parse_scopes("ingest"))[1]
    other = engine.tokens.create("other", parse_scopes("ingest"))[1]
    mine = {"authorization": f"Bearer {platform}"}
    theirs = {"authorization": f"Bearer {other}"}
    with TestClient(create_app(engine, sweep_every=None, deliver_every=None)) as client:
        posted = client.post(
            "/v1/posts/upload",
            headers=mine,
            data={"post": json.dumps({"id": "u1", "author": "a", "text": "hi"})},
            files=[("media", ("photo.png", photo_file(4).read_bytes(), "image/png"))],
        )
        assert posted.status_code == 200 and posted.json()["verdict"] == "allow"
        filed = client.post(
            "/v1/reports",
            headers=mine,
            json={
                "post_id": "u1",
                "category": "threat_to_life",
                "text": "a threat",
                "reporter": "r1",
            },
        )
        assert filed.status_code == 200, filed.text
        answer = filed.json()
        assert answer["new"] is True and answer["report"]["category"] == "threat_to_life"
        assert answer["post"]["verdict"] == "review" and answer["post"]["client"] == "platform"
        assert answer["post"]["review_state"] == "pending"
        # The media of an upload are not kept for an allowed post: the evidence says so.
        item = engine.open_vault().item(engine.decisions.get("u1", client="platform").key)
        assert item.objects["media"] == []
        listed = client.get("/v1/reports", headers=mine).json()
        assert [r["id"] for r in listed] == [answer["report"]["id"]]
        assert listed[0]["post_id"] == "u1" and listed[0]["review_state"] == "pending"
        one = client.get(f"/v1/reports/{answer['report']['id']}", headers=mine)
        assert one.status_code == 200 and one.json()["text"] == "a threat"
        # Another token neither sees the post nor its reports.
        assert (
            client.post(
                "/v1/reports",
                headers=theirs,
                json={"post_id": "u1", "category": "other", "text": ""},
            ).status_code
            == 404
        )
        assert client.get("/v1/reports", headers=theirs).json() == []
        assert (
            client.get(f"/v1/reports/{answer['report']['id']}", headers=theirs).status_code == 404
        )
        bad = client.post(
            "/v1/reports", headers=mine, json={"post_id": "u1", "category": "nope", "text": ""}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["message"].startswith("report category 'nope' is unknown")
        missing = client.post("/v1/reports", headers=mine, json={"post_id": "u1", "text": ""})
        assert missing.status_code == 422 and "category" in missing.json()["error"]["message"]
        assert client.post("/v1/reports", json={}).status_code == 401


def test_user_reports_on_the_command_line(
    amber_cli: Callable[..., CliResult],
    write_posts: Callable[..., Path],
    database: str,
    tmp_path: Path,
) -> None:
    assert amber_cli("scan", write_posts([{"id": "p", "text": "hello"}])).returncode == 0
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        filed = engine.report("p", category="hate", text="a slur", reporter="u9")
    listed = amber_cli("reports", "list", "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    [line] = [json.loads(x) for x in listed.stdout.splitlines()]
    assert line["id"] == filed.report.id and line["verdict"] == "review"
    table = amber_cli("reports", "list", "--category", "hate")
    assert table.returncode == 0 and "a slur" in table.stdout
    shown = amber_cli("reports", "show", filed.report.id, "--format", "json")
    assert json.loads(shown.stdout)["reporter"] == "u9"
    assert amber_cli("reports", "list", "--since", "2999-01-01", "--format", "jsonl").stdout == ""
    bad = amber_cli("reports", "list", "--since", "soon")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --since 'soon' is not an ISO")
    unknown = amber_cli("reports", "show", "nope")
    assert unknown.returncode == 2 and unknown.stderr.startswith("Error: no report 'nope'")
    assert "Traceback" not in bad.stderr + unknown.stderr


FILE_AT = """
import sys, time
from pathlib import Path
from amber.engine import open_engine
with open_engine(db=sys.argv[1], vault=Path(sys.argv[2])) as engine:
    engine.decisions.get("p")  # connected, everything imported
    time.sleep(max(0.0, float(sys.argv[4]) - time.time()))
    print(engine.report("p", category="other", text="spam", reporter=sys.argv[3]).report.id)
"""


def test_reports_filed_by_processes_at_once_are_all_kept(database: str, tmp_path: Path) -> None:
    """Each process decides the post again from what it read; the one that stores last
    must not drop the others' reports."""
    vault = tmp_path / "vault"
    with open_engine(db=database, vault=vault) as engine:
        decide(engine, {"id": "p", "text": "hello"})
    outs = run_at_once(FILE_AT, [[database, str(vault), f"user-{i}"] for i in range(3)])
    filed = {out.strip() for out in outs}
    with open_engine(db=database, vault=vault) as engine:
        decision = engine.decisions.get("p")
    assert len(filed) == 3
    assert {r["report"]["id"] for r in decision.reasons} == filed
    assert decision.verdict.value == "review"


def test_a_restriction_after_a_report_is_a_notice_under_article_16(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    image = photo_file(4)
    decide(engine, {"id": "r", "author": "a", "text": "see", "media": [{"path": str(image)}]})
    engine.report("r", category="violence", text="a beating", reporter="user-3")
    engine.review.lock("r", "rita")
    engine.review.decide("r", "rita", "confirm", action="remove", reason="violence shown")

    [statement] = Statements.of(engine).for_post("r")

    assert statement.fields["source_type"] == "SOURCE_ARTICLE_16"
    assert statement.fields["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    assert problems(statement.fields) == []  # the Transparency Database's schema
