"""Incidents on SQLite and PostgreSQL: the real engine decides the case of DESIGN.md (a
harm poll, its announcement in reply, the result photo matching a bank, a re-upload of it
by another account) and links the posts into one incident as it decides them, with why
each was linked; an unrelated post is not linked, another account's harm poll is an
incident of its own. The incident has one escalation to the authorities (a custody event
logged once, never again for later posts), a timeline with the reviews, and one evidence
bag verified offline by ``amber evidence verify-bag``. Through the library, ``/v1/incidents``
and ``amber incident``. The clock is injected: no test waits."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from amber.api.app import create_app
from amber.engine import Engine, ScanResult, open_engine
from amber.errors import NotFoundError, UserError
from amber.evidence.bag import verify_bag
from amber.incidents import Incident
from amber.posts import parse_post
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import CliResult, run_cli

DAY1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
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

    def post(self, post_id: str, minutes: int, **fields: Any) -> ScanResult:
        """Decide a post made ``minutes`` after DAY1, decided a minute later."""
        made = DAY1 + timedelta(minutes=minutes)
        self.clock.now = made + timedelta(minutes=1)
        raw = {"id": post_id, "created_at": made.isoformat(), **fields}
        return self.engine.decide_post(parse_post(raw, base=self.folder))

    def incident(self, post_id: str) -> Incident:
        found = self.engine.incidents.of_post(post_id, client="_local")
        assert found is not None, f"{post_id} is in no incident"
        return self.engine.incidents.get(found)

    def custody(self, event: str) -> list[dict[str, Any]]:
        return [
            e.record for e in self.engine.open_vault().log.entries if e.record["event"] == event
        ]


@pytest.fixture
def case(database: str, tmp_path: Path) -> Iterator[Case]:
    """A bank ``known`` (remove) of the result photo; the case decided in order: the poll,
    the announcement replying to it, the result photo (a JPEG of the banked photo), an
    allowed post, and a re-upload of the result (smaller, recompressed) by another
    account."""
    photo(50, 640, 480).save(tmp_path / "known.png")
    Image.open(tmp_path / "known.png").convert("RGB").save(tmp_path / "result.jpg", quality=90)
    copy = Image.open(tmp_path / "known.png").convert("RGB").resize((560, 420))
    copy.save(tmp_path / "reupload.jpg", quality=70)
    photo(7, 640, 480).save(tmp_path / "cat.png")
    clock = Clock(DAY1)
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine:
        engine.banks.create("known", label="execution-photo")
        engine.banks.add_files("known", [tmp_path / "known.png"])
        found = Case(engine, clock, tmp_path, database)
        assert found.post("poll", 0, **POLL).outcome.verdict == "restrict"
        announced = found.post(
            "announcement",
            60,
            author="armed_group",
            reply_to="poll",
            text="As you wish, my followers.",
        )
        assert announced.outcome.verdict == "restrict"
        result = found.post("result", 61, author="armed_group", media=[{"path": "result.jpg"}])
        assert result.outcome.verdict == "remove"
        cat = found.post("cat", 90, author="cat_lover", text="my cat", media=[{"path": "cat.png"}])
        assert cat.outcome.verdict == "allow"
        copy = found.post("reupload", 300, author="someone_else", media=[{"path": "reupload.jpg"}])
        assert copy.outcome.verdict == "remove"
        yield found


def test_the_case_is_linked_into_one_incident_as_it_is_decided(case: Case) -> None:
    incident = case.incident("poll")
    members = {m.post_id: m for m in incident.members}
    assert list(members) == ["poll", "announcement", "result", "reupload"]  # as made
    why = {p: {(w["by"], w.get("to")) for w in m.why} for p, m in members.items()}
    assert ("reply", "poll") in why["announcement"]
    assert ("replied_by", "announcement") in why["poll"]
    assert ("author", "poll") in why["result"]
    assert ("entry", "result") in why["reupload"]
    assert ("threat_to_life", None) in why["poll"]  # it opened the incident on its own
    assert next(w for w in members["reupload"].why if w["by"] == "entry")["entry"] > 0
    assert case.engine.incidents.of_post("cat", client="_local") is None
    assert [i.id for i in case.engine.incidents.find()] == [incident.id]
    summary = incident.to_summary()
    assert summary["members"] == 4 and summary["first_post"] == "poll"
    assert summary["authors"] == ["armed_group", "someone_else"]
    assert summary["verdict"] == "remove"


def test_another_accounts_harm_poll_is_an_incident_of_its_own(case: Case) -> None:
    other = {**POLL, "author": "someone_new", "text": "Kill her or let her go? Vote now"}
    assert case.post("elsewhere", 400, **other).outcome.verdict == "restrict"
    mine, theirs = case.incident("poll"), case.incident("elsewhere")
    assert mine.id != theirs.id
    assert [m.post_id for m in theirs.members] == ["elsewhere"]
    assert theirs.escalation is not None and theirs.escalation["post_id"] == "elsewhere"


def test_one_escalation_per_incident_logged_once(case: Case) -> None:
    incident = case.incident("poll")
    assert incident.escalation is not None and incident.escalated_at is not None
    assert incident.escalation["post_id"] == "poll"
    assert "Art. 18" in incident.escalation["basis"]
    assert incident.escalation_logged_at is not None
    escalated = case.custody("escalated")
    assert [(e["post_id"], e["incident"]) for e in escalated] == [("poll", incident.id)]
    # A later threat to life in the same incident (the same account announcing again)
    # escalates nothing more.
    more = case.post(
        "again", 420, author="armed_group", reply_to="poll", text="As you wish, my followers."
    )
    assert "escalate:threat_to_life" in more.outcome.actions
    assert case.incident("again").id == incident.id
    assert case.incident("poll").escalated_at == incident.escalated_at
    assert len(case.custody("escalated")) == 1
    assert case.engine.incidents.log_escalations(actor="test") == 0
    steps = [s.kind for s in case.incident("poll").timeline]
    assert steps.count("escalated") == 1


def test_the_timeline_holds_decisions_and_reviews_in_time_order(case: Case) -> None:
    case.clock.now = DAY1 + timedelta(hours=6)
    case.engine.review.lock("poll", "alice")
    case.engine.review.decide("poll", "alice", "confirm", action="remove", reason="a vote")
    timeline = case.incident("poll").timeline
    assert [s.at for s in timeline] == sorted(s.at for s in timeline)
    kinds = [(s.kind, s.post_id) for s in timeline]
    assert kinds[:2] == [("posted", "poll"), ("decided", "poll")]
    assert ("reviewed", "poll") in kinds and kinds.index(("reviewed", "poll")) == len(kinds) - 1
    decided = next(s for s in timeline if s.kind == "decided" and s.post_id == "result")
    assert decided.detail["verdict"] == "remove" and decided.detail["reasons"][0]["bank"] == "known"


def test_one_evidence_bag_for_the_incident_verified_offline(case: Case) -> None:
    incident = case.incident("poll")
    out = case.folder / "incident-bag"
    case.engine.incidents.export(incident.id, out, actor="investigator")
    report = verify_bag(out)
    assert report.ok, report.problems
    assert report.incident == incident.id
    assert report.posts == ["poll", "announcement", "result", "reupload"]
    record = json.loads((out / "data" / "incident.json").read_text(encoding="utf-8"))
    assert record["id"] == incident.id and record["escalation"]["post_id"] == "poll"
    custody = (out / "data" / "posts" / "001-poll" / "custody.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in custody]
    assert events[0] == "preserved" and "escalated" in events and events[-1] == "exported"
    assert len(list((out / "data" / "posts" / "004-reupload" / "media").iterdir())) == 1
    with pytest.raises(UserError, match="already exists"):
        case.engine.incidents.export(incident.id, out, actor="investigator")

    # The command line verifies it too; a planted file or a changed record breaks it.
    verified = run_cli("evidence", "verify-bag", str(out))
    assert verified.returncode == 0, verified.stderr
    assert f"incident {incident.id}" in verified.stdout and "4 posts" in verified.stdout
    planted = case.folder / "planted"
    shutil.copytree(out, planted)
    (planted / "data" / "posts" / "005-extra").mkdir()
    (planted / "data" / "posts" / "005-extra" / "post.json").write_text("{}")
    assert not verify_bag(planted).ok
    changed = case.folder / "changed"
    shutil.copytree(out, changed)
    decision = changed / "data" / "posts" / "003-result" / "decision.json"
    decision.write_text(decision.read_text().replace("remove", "allow"))
    assert not verify_bag(changed).ok


def test_single_post_bags_still_verify(case: Case) -> None:
    from amber.evidence.bag import export_bag

    bag = export_bag(case.engine.open_vault(), "result", case.folder / "one-bag")
    report = verify_bag(bag)
    assert report.ok, report.problems
    assert report.post_id == "result" and report.incident is None


def test_unknown_incidents_are_not_found(case: Case) -> None:
    with pytest.raises(NotFoundError, match="no incident 999"):
        case.engine.incidents.get(999)
    with pytest.raises(UserError, match="limit 0"):
        case.engine.incidents.find(limit=0)


# -- HTTP ------------------------------------------------------------------------------


def test_the_http_api(case: Case) -> None:
    app = create_app(case.engine, media_root=case.folder, deliver_every=None)
    clients = {}
    for name, scopes in (
        ("platform", "ingest"),
        ("other", "ingest"),
        ("alice", "review"),
        ("root", "admin"),
    ):
        secret = case.engine.tokens.create(name, parse_scopes(scopes))[1]
        clients[name] = TestClient(app, headers={"authorization": f"Bearer {secret}"})
    listed = clients["alice"].get("/v1/incidents")
    assert listed.status_code == 200, listed.text
    [summary] = listed.json()
    assert summary["members"] == 4 and summary["escalated_at"] is not None
    assert clients["platform"].get("/v1/incidents").json() == listed.json()  # local posts
    assert clients["alice"].get("/v1/incidents", params={"escalated": "false"}).json() == []
    one = clients["alice"].get(f"/v1/incidents/{summary['id']}")
    assert one.status_code == 200
    body = one.json()
    assert [m["post_id"] for m in body["members"]] == ["poll", "announcement", "result", "reupload"]
    assert body["escalation"]["post_id"] == "poll"
    assert body["timeline"][0] == {
        "at": DAY1.isoformat(),
        "kind": "posted",
        "post_id": "poll",
        "author": "armed_group",
    }
    missing = clients["alice"].get("/v1/incidents/999")
    assert missing.status_code == 404 and "no incident 999" in missing.json()["error"]["message"]
    assert clients["alice"].get("/v1/incidents", params={"limit": 0}).status_code == 422
    assert clients["alice"].get("/v1/incidents/x").status_code == 422

    # Another platform's token sees its own incidents only.
    posted = clients["other"].post("/v1/posts", json={"id": "theirs", **POLL})
    assert posted.status_code == 200 and posted.json()["verdict"] == "restrict"
    assert [i["client"] for i in clients["other"].get("/v1/incidents").json()] == [
        "other",
        "_local",
    ]
    assert len(clients["platform"].get("/v1/incidents").json()) == 1
    theirs = clients["other"].get("/v1/incidents").json()[0]["id"]
    assert clients["platform"].get(f"/v1/incidents/{theirs}").status_code == 404

    # The bag, for admins.
    assert clients["alice"].get(f"/v1/incidents/{summary['id']}/bag").status_code == 403
    zipped = clients["root"].get(f"/v1/incidents/{summary['id']}/bag")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    target = case.folder / "unzipped"
    zipfile.ZipFile(io.BytesIO(zipped.content)).extractall(target)
    report = verify_bag(target / f"incident-{summary['id']}")
    assert report.ok, report.problems


# -- the command line --------------------------------------------------------------------


def _cli(case: Case, *args: str) -> CliResult:
    env = {"AMBER_DB": case.database, "AMBER_VAULT": str(case.folder / "vault")}
    return run_cli(*args, env=env)


def test_the_command_line(case: Case) -> None:
    incident_id = case.incident("poll").id
    listed = _cli(case, "incident", "list", "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == incident_id and row["members"] == 4
    table = _cli(case, "incident", "list")
    assert table.returncode == 0 and "armed_group" in table.stdout
    shown = _cli(case, "incident", "show", str(incident_id))
    assert shown.returncode == 0, shown.stderr
    assert "escalated to the authorities" in shown.stdout and "reply poll" in shown.stdout
    assert "entry result" in shown.stdout
    as_json = json.loads(
        _cli(case, "incident", "show", str(incident_id), "--format", "json").stdout
    )
    assert as_json["id"] == incident_id
    out = case.folder / "cli-bag"
    exported = _cli(case, "incident", "export", str(incident_id), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert verify_bag(out).ok
    for args, message in (
        (("incident", "show", "999"), "no incident 999"),
        (("incident", "export", str(incident_id), "--out", str(out)), "already exists"),
        (("incident", "list", "--format", "xml"), "--format 'xml' is unknown"),
        (("incident", "list", "--limit", "0"), "limit 0 is out of range"),
    ):
        bad = _cli(case, *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr


# -- the reviewer console ------------------------------------------------------------------


def test_the_item_page_shows_the_incident_and_its_timeline(case: Case) -> None:
    secret = case.engine.tokens.create("alice", parse_scopes("review"))[1]
    app = create_app(case.engine, media_root=case.folder, deliver_every=None)
    with TestClient(app) as client:
        assert client.post("/console/sign-in", data={"token": secret}).status_code in (200, 303)
        page = client.get("/console/items/reupload")
        assert page.status_code == 200, page.text
        html = page.text
        incident = case.incident("poll")
        assert f"Incident {incident.id}: 4 posts" in html
        assert "Escalated to the authorities" in html and "once for the whole incident" in html
        for post_id in ("poll", "announcement", "result"):
            assert f'href="/console/items/{post_id}"' in html
        assert "linked by entry result" in html and "<b>decided</b> remove" in html
        assert f"amber incident export {incident.id}" in html
        assert 'id="incident"' not in client.get("/console/items/cat").text


def test_a_copy_spreading_widely_links_each_new_copy_to_a_bounded_number(case: Case) -> None:
    """Every copy of one photo is near every other: the 25th re-upload joins the incident
    linked to at most ``LINK_LIMIT`` posts by its photo (the nearest, then the newest), so
    a post's work in its transaction does not grow with the copies before it."""
    from amber.incidents.linking import LINK_LIMIT

    original = Image.open(case.folder / "known.png").convert("RGB")
    for n in range(LINK_LIMIT + 5):
        original.resize((600 - n, 450 - n)).save(case.folder / f"copy-{n}.jpg", quality=60 + n)
        copy = case.post(
            f"copy-{n}", 400 + n, author=f"sharer-{n}", media=[{"path": f"copy-{n}.jpg"}]
        )
        assert copy.outcome.verdict == "remove"
    incident = case.incident("poll")
    members = {m.post_id: m for m in incident.members}
    assert {f"copy-{n}" for n in range(LINK_LIMIT + 5)} <= set(members)  # all in the one incident
    last = members[f"copy-{LINK_LIMIT + 4}"]
    by_photo = {w["to"] for w in last.why if w["by"] == "pdq"}
    assert 0 < len(by_photo) <= LINK_LIMIT, last.why
    assert max(len(m.why) for m in incident.members) <= 3 * LINK_LIMIT
