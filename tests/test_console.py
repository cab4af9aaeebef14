"""The reviewer console in process (FastAPI's TestClient over the app ``amber serve``
runs): sign-in, scopes, CSRF, locks, custody events for media, settings and the
graphic-items count. ``serve`` runs it as a real process for the browser tests."""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import open_engine
from amber.posts import parse_post
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import Databases, run_at_once

POLL = "Kill him or let him go? You have one hour to vote."


@dataclass
class Console:
    """A console to test: in process (``app``), or a real ``amber serve`` at ``url``."""

    url: str
    tokens: dict[str, str]
    db: str
    vault: Path
    app: FastAPI | None = None

    def client(self, cookies: dict[str, str] | None = None) -> httpx.Client:
        if self.app is not None:
            return TestClient(self.app, base_url=self.url, cookies=cookies, follow_redirects=False)
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, cookies=cookies)

    @contextmanager
    def signed_in(self, name: str) -> Iterator[httpx.Client]:
        with self.client() as client:
            answer = client.post("/console/sign-in", data={"token": self.tokens[name]})
            assert answer.status_code == 303, answer.text
            yield client

    def custody(self, post_id: str, event: str) -> list[dict[str, object]]:
        with open_engine(db=self.db, vault=self.vault) as engine:
            entries = engine.open_vault().log.entries
            return [
                e.record
                for e in entries
                if e.record.get("post_id") == post_id and e.record.get("event") == event
            ]


def _poll(post_id: str, author: str, closes_in: timedelta | None, image: str) -> dict[str, object]:
    poll: dict[str, object] = {"question": "Kill him?", "options": ["Kill", "Let him go"]}
    if closes_in is not None:
        poll["closes_at"] = (datetime.now(UTC) + closes_in).isoformat()
    return {
        "id": post_id,
        "author": author,
        "text": POLL,
        "poll": poll,
        "media": [{"path": image}],
    }


def seed(root: Path, db: str) -> tuple[Path, dict[str, str]]:
    """A database and vault with a bank, review tokens and three queued items.

    ``urgent`` (poll closing in 40 minutes, image ``urgent.png``) comes first, then
    ``later`` (closing in 3 hours), then ``open`` (no closing time).
    """
    vault = root / "vault"
    media = root / "media"
    media.mkdir()
    for seed_, name in ((11, "urgent.png"), (12, "later.png"), (13, "open.png")):
        photo(seed_, 320, 240).save(media / name)
    tokens = {}
    with open_engine(db=db, vault=vault) as engine:
        for name, scopes in (
            ("alice", "review"),
            ("bob", "review"),
            ("ingest", "ingest"),
            ("admin", "admin"),
        ):
            tokens[name] = engine.tokens.create(name, parse_scopes(scopes))[1]
        engine.banks.create("reviewed", action="remove", label="execution-photo")
        for raw in (
            _poll("later", "group-b", timedelta(hours=3), "later.png"),
            _poll("urgent", "group-a", timedelta(minutes=40), "urgent.png"),
            _poll("open", "group-a", None, "open.png"),
        ):
            engine.decide_post(parse_post(raw, base=media, source="seed"))
        order = [i.post_id for i in engine.review.items()]
    assert order == ["urgent", "open", "later"], order  # a threat to life gets an hour
    return vault, tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(root: Path, db: str) -> Iterator[Console]:
    """``amber serve`` on a free loopback port over freshly seeded state in ``db``."""
    vault, tokens = seed(root, db)
    port = _free_port()
    command = ["serve", "--port", str(port), "--db", db, "--vault", str(vault)]
    process = subprocess.Popen(
        [sys.executable, "-m", "amber", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/console/sign-in").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            _, err = process.communicate()
            raise RuntimeError(f"serve exited {process.returncode}: {err.decode()}")
        time.sleep(0.1)
    try:
        yield Console(url, tokens, db, vault)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Console]:
    """The console of the app ``amber serve`` runs, in this process, on seeded state."""
    root = tmp_path_factory.mktemp("console")
    with databases.new(root) as db:
        vault, tokens = seed(root, db)
        with open_engine(db=db, vault=vault) as engine:
            app = create_app(engine)
            with TestClient(app):  # its lifespan
                yield Console("http://testserver", tokens, db, vault, app)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_without_a_session_pages_redirect_and_the_rest_is_refused(console: Console) -> None:
    with console.client() as anonymous:
        page = anonymous.get("/console/queue")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/sign-in?next=/console/queue"
        assert anonymous.get("/console/items/urgent").status_code == 303
        assert anonymous.get("/console/media/urgent/0").status_code == 401
        refused = anonymous.post(
            "/console/items/urgent/decision", data={"choice": "reject", "reason": "x"}
        )
        assert refused.status_code == 401
    with console.client(cookies={"amber_console": "abc.def"}) as forged:
        assert forged.get("/console/queue").status_code == 303
    # the console is not part of the API's OpenAPI description (its routes use sessions)
    with console.client() as anonymous:
        spec = anonymous.get("/openapi.json").json()
    assert not [p for p in spec["paths"] if p.startswith("/console")]


def test_sign_in_needs_a_live_token_with_the_review_scope(console: Console) -> None:
    with console.client() as client:
        wrong = client.post("/console/sign-in", data={"token": "amber_not-a-token"})
        assert wrong.status_code == 401 and "unknown token" in wrong.text
        ingest = client.post("/console/sign-in", data={"token": console.tokens["ingest"]})
        assert ingest.status_code == 403 and "lacks the &#39;review&#39; scope" in ingest.text
        assert "set-cookie" not in ingest.headers
        ok = client.post(
            "/console/sign-in", data={"token": console.tokens["alice"], "next": "//evil.test/"}
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/console/queue"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert console.tokens["alice"] not in cookie and "alice" not in cookie
        cross = client.post(
            "/console/sign-in",
            data={"token": console.tokens["alice"]},
            headers={"origin": "http://evil.test"},
        )
        assert cross.status_code == 403


def test_queue_lists_the_most_urgent_first_with_time_left(console: Console) -> None:
    with console.signed_in("alice") as alice:
        page = alice.get("/console/queue").text
    rows = re.findall(r'<tr class="item" data-post-id="([^"]+)"', page)
    assert rows[:3] == ["urgent", "open", "later"]
    assert re.search(r"(39|40) min left", page) and re.search(r"(2 h 59|3 h 0) min left", page)
    assert "threat to life" in page and "group-a" in page


def test_item_page_takes_the_lock_and_shows_who_holds_it(console: Console) -> None:
    with console.signed_in("bob") as bob, console.signed_in("alice") as alice:
        page = bob.get("/console/items/later")
        assert page.status_code == 200
        text = page.text
        assert POLL in text and "Kill him?" in text and "Let him go" in text
        assert "closes at" in text and "group-b" in text and "harm-poll" in text
        assert 'name="choice" value="remove"' in text
        held = alice.get("/console/items/later").text
        assert "<b>bob</b> is reviewing this item" in held
        assert 'name="choice"' not in held
        assert (
            bob.post("/console/items/later/release", data={"csrf": csrf_of(text)}).status_code
            == 303
        )
        assert "is reviewing" not in alice.get("/console/items/later").text
        related = alice.get("/console/items/open").text
        assert "urgent" in related and "same author" in related


def test_decisions_need_the_session_csrf_token(console: Console) -> None:
    with console.signed_in("alice") as alice, console.signed_in("bob") as bob:
        page = alice.get("/console/items/open").text
        decision = {"choice": "escalate", "reason": "needs a senior"}
        assert alice.post("/console/items/open/decision", data=decision).status_code == 403
        bobs = csrf_of(bob.get("/console/queue").text)
        stolen = alice.post("/console/items/open/decision", data={**decision, "csrf": bobs})
        assert stolen.status_code == 403
        no_reason = alice.post(
            "/console/items/open/decision",
            data={"choice": "reject", "reason": " ", "csrf": csrf_of(page)},
        )
        assert no_reason.status_code == 400 and "needs a reason" in no_reason.text
        done = alice.post("/console/items/open/decision", data={**decision, "csrf": csrf_of(page)})
        assert done.status_code == 303 and done.headers["location"].startswith("/console/")
        queue = alice.get("/console/queue").text
        assert 'data-post-id="open"' not in queue


def test_media_views_are_logged_and_reveals_counted(console: Console) -> None:
    with console.signed_in("bob") as bob:
        page = bob.get("/console/items/urgent").text
        assert 'class="media blurred grey"' in page
        before = len(console.custody("urgent", "viewed"))
        image = bob.get("/console/media/urgent/0")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.headers["cache-control"] == "no-store, private"
        assert image.content.startswith(b"\x89PNG")
        assert bob.get("/console/media/urgent/9").status_code == 404
        assert bob.post("/console/media/urgent/0/reveal", data={}).status_code == 403
        seen = bob.post("/console/media/urgent/0/reveal", data={"csrf": csrf_of(page)})
        assert seen.json() == {"seen_today": 1}
        views = console.custody("urgent", "viewed")[before:]
        assert [v["shown"] for v in views] == ["blurred", "revealed"]
        assert {v["actor"] for v in views} == {"bob via amber console"} and views[0]["media"] == 0
        assert 'Seen today: <b id="seen-today">1</b>' in bob.get("/console/queue").text
        bob.post("/console/items/urgent/release", data={"csrf": csrf_of(page)})


def test_settings_are_kept_per_reviewer_and_sign_out_ends_the_session(console: Console) -> None:
    with console.signed_in("bob") as bob, console.signed_in("alice") as alice:
        token = csrf_of(bob.get("/console/settings").text)
        saved = bob.post("/console/settings", data={"csrf": token, "greyscale": "1"})
        assert saved.status_code == 303
        assert 'class="media  grey"' in bob.get("/console/items/later").text
        bob.post("/console/items/later/release", data={"csrf": token})
        assert 'class="media blurred grey"' in alice.get("/console/items/later").text
        alice.post(
            "/console/items/later/release", data={"csrf": csrf_of(alice.get("/console/queue").text)}
        )
        assert bob.post("/console/sign-out", data={}).status_code == 403
        assert bob.post("/console/sign-out", data={"csrf": token}).status_code == 303
        assert bob.get("/console/queue").status_code == 303


OPEN_STORE_AT = """
import sys, time
from pathlib import Path
from amber.web.sessions import ConsoleStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
store = ConsoleStore(Path(sys.argv[1]))
print(store.key.hex(), store.settings("nobody"))
store.close()
"""


def test_workers_opening_the_console_store_at_once_share_one_key(tmp_path: Path) -> None:
    keys = {out.split()[0] for out in run_at_once(OPEN_STORE_AT, [[str(tmp_path / "console")]] * 4)}
    assert len(keys) == 1 and len(bytes.fromhex(keys.pop())) == 32
    # SQLite removes its -wal and -shm files only when a closing connection can lock the
    # database alone; processes closing at the same moment can each leave them to the
    # other. Those files are SQLite's, not a key candidate amber left.
    names = sorted(
        p.name for p in (tmp_path / "console").iterdir() if not p.name.endswith(("-wal", "-shm"))
    )
    assert names == ["console.sqlite", "session.key"]  # no candidate key left behind


def _targets(page: str, at: str) -> list[str]:
    """Every URL a page links, posts or fetches to, resolved as a browser resolves it."""
    found = re.findall(r'(?:href|src|action|data-reveal)="([^"]*)"', page)
    return [urlsplit(urljoin(at, html.unescape(u))).path for u in found]


def test_a_post_id_cannot_aim_a_page_s_links_or_forms_at_another_item(console: Console) -> None:
    decoy = "../items/urgent"  # a decoy id naming the victim's URL
    with open_engine(db=console.db, vault=console.vault) as engine:
        engine.decide_post(
            parse_post(
                {"id": decoy, "text": POLL, "poll": {"question": "?", "options": ["a", "b"]}},
                base=console.vault,
                source="test",
            )
        )
    with console.signed_in("alice") as alice:
        at = "http://testserver/console/items/" + quote(decoy, safe="")
        page = alice.get(at)
        assert page.status_code == 200 and "../items/urgent" in page.text
        for path in _targets(page.text, at):
            for prefix in ("/console/items/", "/console/media/"):
                if path.startswith(prefix):
                    assert unquote(path.removeprefix(prefix)).startswith(decoy), path
        queue = alice.get("/console/queue")
        linked = {
            unquote(p.removeprefix("/console/items/"))
            for p in _targets(queue.text, "http://testserver/console/queue")
            if p.startswith("/console/items/")
        }
        assert decoy in linked and linked <= {i.post_id for i in engine.review.items()}
        released = alice.post(
            "/console/items/" + quote(decoy, safe="") + "/release",
            data={"csrf": csrf_of(page.text)},
        )
        assert released.status_code == 303
        assert engine.review.item(decoy).locked_by is None
        again = alice.post(
            "/console/items/" + quote(decoy, safe="") + "/release",
            data={"csrf": csrf_of(page.text)},
        )
        assert again.status_code == 409 and "holds no lock" in again.text
