"""The console after an outcome, in process (FastAPI's TestClient over the app ``amber
serve`` runs), on both databases: the appeals queue with its time left, an appeal decided
(refused for the reviewer who decided the post), the escalation queue and its owner, and
an item's review history with reopen and the bank entries reverted one by one. Decisions
are the real engine's; the clock is injected."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.posts import parse_post
from amber.synthetic import photo
from amber.tokens import parse_scopes

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
class Console:
    engine: Engine
    clock: Clock
    app: object
    tokens: dict[str, str]

    def signed_in(self, name: str) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        answer = client.post("/console/sign-in", data={"token": self.tokens[name]})
        assert answer.status_code == 303, answer.text
        return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def console(database: str, tmp_path: Path) -> Iterator[Console]:
    """``poll-1`` (restricted, two photos) confirmed by alice into the bank ``confirmed``
    and appealed by its user; ``poll-2`` escalated by alice."""
    clock = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    photo(71, 320, 240).save(tmp_path / "a.png")
    photo(72, 320, 240).save(tmp_path / "b.png")
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine:
        tokens = {
            name: engine.tokens.create(name, parse_scopes(scopes))[1]
            for name, scopes in (("alice", "review"), ("bob", "review"), ("platform", "ingest"))
        }
        engine.banks.create("confirmed", label="execution-photo")
        media = [{"path": "a.png"}, {"path": "b.png"}]
        for raw in ({"id": "poll-1", **POLL, "media": media}, {"id": "poll-2", **POLL}):
            engine.decide_post(parse_post(raw, base=tmp_path))
        for post_id, outcome, options in (
            ("poll-1", "confirm", {"action": "remove", "bank": "confirmed"}),
            ("poll-2", "escalate", {}),
        ):
            engine.review.lock(post_id, "alice")
            engine.review.decide(post_id, "alice", outcome, reason="checked", **options)
        clock.now += timedelta(hours=1)
        engine.appeals.file("poll-1", "It was a quiz about a film.", filed_by="token:platform")
        app = create_app(engine, deliver_every=None, sweep_every=None)
        with TestClient(app):  # its lifespan
            yield Console(engine, clock, app, tokens)


def test_the_appeals_queue_and_an_appeal_decided(console: Console) -> None:
    (appeal,) = console.engine.appeals.find()
    alice, bob = console.signed_in("alice"), console.signed_in("bob")
    listed = bob.get("/console/appeals").text
    assert f'data-appeal-id="{appeal.id}"' in listed and "14 days left" in listed
    assert "It was a quiz about a film." in listed
    assert 'href="/console/appeals"' in listed  # in the bar of every page

    page = alice.get(f"/console/appeals/{appeal.id}").text
    assert "You decided this post" in page and 'name="outcome"' not in page
    refused = alice.post(
        f"/console/appeals/{appeal.id}/decision",
        data={"csrf": csrf_of(page), "outcome": "reverse", "reason": "mine"},
    )
    assert refused.status_code == 409
    assert "&#39;alice&#39; decided post &#39;poll-1&#39; and may not decide" in refused.text

    page = bob.get(f"/console/appeals/{appeal.id}").text
    assert 'name="outcome" value="reverse"' in page and "May not decide it" in page
    form = {"outcome": "reverse", "reason": "a film quiz"}
    assert bob.post(f"/console/appeals/{appeal.id}/decision", data=form).status_code == 403
    done = bob.post(f"/console/appeals/{appeal.id}/decision", data={**form, "csrf": csrf_of(page)})
    assert done.status_code == 303 and done.headers["location"] == "/console/appeals"
    assert console.engine.decisions.get("poll-1").review_state == "reversed"
    assert f'data-appeal-id="{appeal.id}"' not in bob.get("/console/appeals").text
    decided = bob.get("/console/appeals?status=reversed").text
    assert f'data-appeal-id="{appeal.id}"' in decided and "restore" in decided
    shown = bob.get(f"/console/appeals/{appeal.id}").text
    assert "Reversed by <b>bob</b>" in shown and "the post was restored" in shown
    item = bob.get("/console/items/poll-1").text
    assert f'href="/console/appeals/{appeal.id}">appeal {appeal.id}</a> reversed by bob' in item
    assert bob.get("/console/appeals?status=closed").status_code == 400
    assert bob.get("/console/appeals/999").status_code == 404


def test_the_escalation_queue_until_someone_owns_it(console: Console) -> None:
    alice, bob = console.signed_in("alice"), console.signed_in("bob")
    page = bob.get("/console/escalations").text
    assert 'data-post-id="poll-2"' in page and "1 waiting for an owner" in page
    assert "Own it" in page
    item = bob.get("/console/items/poll-2").text
    assert "Own this escalation" in item and 'id="decision"' not in item
    owned = bob.post("/console/escalations/poll-2/own", data={"csrf": csrf_of(page)})
    assert owned.status_code == 303 and owned.headers["location"] == "/console/items/poll-2"
    item = bob.get("/console/items/poll-2").text
    assert "Owned by <b>bob</b>" in item and 'id="decision"' in item
    assert "Give back to the queue" not in item  # an owned item is not locked
    others = alice.get("/console/items/poll-2").text
    assert "Owned by <b>bob</b>" in others and 'id="decision"' not in others
    taken = alice.post("/console/escalations/poll-2/own", data={"csrf": csrf_of(others)})
    assert taken.status_code == 409 and "owned by &#39;bob&#39;" in taken.text
    assert "0 waiting for an owner" in bob.get("/console/escalations").text
    decided = bob.post(
        "/console/items/poll-2/decision",
        data={"csrf": csrf_of(item), "choice": "reject", "reason": "a quiz"},
    )
    assert decided.status_code == 303
    assert 'data-post-id="poll-2"' not in bob.get("/console/escalations").text
    history = bob.get("/console/items/poll-2").text
    steps = re.findall(r'<li class="step (\w+)">', history)
    assert steps == ["escalate", "own", "reject"]


def test_an_items_history_reopen_and_bank_entries_reverted_one_by_one(console: Console) -> None:
    engine = console.engine
    bob = console.signed_in("bob")
    (appeal,) = engine.appeals.find()
    engine.appeals.decide(appeal.id, "bob", "uphold", reason="a vote on a life")
    page = bob.get("/console/items/poll-1").text
    first, second = sorted(engine.history.banked("poll-1"))
    assert re.findall(r'name="entry" value="(\d+)"', page) == [str(first), str(second)]
    assert 'action="/console/items/poll-1/reopen"' in page
    reverted = bob.post(
        "/console/items/poll-1/unbank",
        data={"csrf": csrf_of(page), "entry": str(second), "reason": "news footage"},
    )
    assert reverted.status_code == 303
    (gone,) = [e for e in engine.banks.audit("confirmed") if e.action == "delete_entry"]
    assert gone.entry == second and gone.actor == "reviewer:bob"
    page = bob.get("/console/items/poll-1").text
    assert re.findall(r'name="entry" value="(\d+)"', page) == [str(first)]
    stray = bob.post(
        "/console/items/poll-1/unbank",
        data={"csrf": csrf_of(page), "entry": str(second), "reason": "again"},
    )
    assert stray.status_code == 400 and "was not added by a review" in stray.text

    no_reason = bob.post(
        "/console/items/poll-1/reopen", data={"csrf": csrf_of(page), "reason": " "}
    )
    assert no_reason.status_code == 400 and "needs a reason" in no_reason.text
    reopened = bob.post(
        "/console/items/poll-1/reopen", data={"csrf": csrf_of(page), "reason": "film quiz"}
    )
    assert reopened.status_code == 303
    page = bob.get("/console/items/poll-1").text
    assert re.findall(r'<li class="step (\w+)">', page) == ["confirm", "unbank", "reopen"]
    assert 'id="decision"' in page  # back in the queue, and bob holds its lock now
    assert 'action="/console/items/poll-1/reopen"' not in page
