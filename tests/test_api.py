"""The HTTP API in process (FastAPI's TestClient over the app ``amber serve`` runs): auth
on every route, posts, banks, review, evidence, liveness, the access log and the offline
docs; and one real ``amber serve`` process, for what only a process shows (it starts,
answers on a port and writes its access log to stderr)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import ImageOps

from amber.api.app import create_app, openapi_spec
from amber.api.docs import render_markdown
from amber.engine import Engine, open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import Databases

ROOT = Path(__file__).resolve().parents[1]
TOKENS = (
    ("ingest", "ingest"),
    ("review", "review"),
    ("alice", "review"),
    ("bob", "review"),
    ("admin", "admin"),
    ("ingest-review", "ingest,review"),
)


@dataclass
class Api:
    app: FastAPI
    engine: Engine
    tokens: dict[str, str]
    media_root: Path

    def client(self, token: str | None = None) -> TestClient:
        headers = {} if token is None else {"authorization": f"Bearer {self.tokens[token]}"}
        return TestClient(self.app, headers=headers)


def _tokens(engine: Engine) -> dict[str, str]:
    return {name: engine.tokens.create(name, parse_scopes(scopes))[1] for name, scopes in TOKENS}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    media = root / "media"
    media.mkdir()
    with databases.new(root) as db, open_engine(db=db, vault=root / "vault") as engine:
        app = create_app(engine, media_root=media, max_body=4_000_000)
        with TestClient(app):  # the lifespan: warm the index up once
            yield Api(app, engine, _tokens(engine), media)


def _routes(api: Api) -> list[tuple[str, str]]:
    spec = api.client().get("/openapi.json").json()
    return [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]


NEEDS = {
    "/v1/health": "ingest",
    "/v1/posts": "ingest",
    "/v1/posts/upload": "ingest",
    "/v1/posts/{post_id}/removal-order": "admin",
    "/v1/decisions": "ingest",
    "/v1/decisions/{post_id}": "ingest",
    "/v1/statements": "ingest",
    "/v1/accounts": "ingest",
    "/v1/reports": "ingest",
    "/v1/retrohunt": "admin",
    "/v1/appeals": "ingest",
    "/v1/appeals/{appeal_id}": "ingest-or-review",
    "/v1/appeals/{appeal_id}/decision": "review",
    "/v1/incidents": "ingest-or-review",
    "/v1/incidents/{incident_id}/bag": "admin",
    "/v1/orders": "admin",
    "/v1/report": "admin",
    "/v1/hash": "ingest",
    "/v1/lookup": "ingest",
    "/v1/compare": "ingest",
    "/v1/review": "review",
    "/v1/banks": "admin",
    "/v1/exchanges": "admin",
    "/v1/webhooks": "admin",
    "/v1/evidence": "admin",
    "/v1/metrics": "admin",
}
#: Routes whose scope depends on the method (the platform files an appeal; it and the
#: reviewers read them).
BY_METHOD = {("GET", "/v1/appeals"): "ingest-or-review"}
#: Routes for load balancers: no token.
OPEN = {"/v1/live"}


def _needed(path: str, method: str = "GET") -> str:
    if (method, path) in BY_METHOD:
        return BY_METHOD[method, path]
    return next(
        scope
        for prefix, scope in sorted(NEEDS.items(), key=lambda kv: -len(kv[0]))
        if path == prefix or path.startswith(prefix + "/")
    )


def test_every_route_refuses_without_a_token_or_scope(api: Api) -> None:
    routes = _routes(api)
    assert len(routes) >= 16
    wrong = {"ingest": "review", "review": "ingest", "admin": "ingest-review"}
    for method, path in routes:
        url = (
            path.replace("{post_id}", "p1")
            .replace("{name}", "b1")
            .replace("{appeal_id}", "1")
            .replace("{incident_id}", "1")
            .replace("{order_id}", "1")
        )
        if path in OPEN:
            assert api.client().request(method, url).status_code == 200, (method, path)
            continue
        response = api.client().request(method, url)
        assert response.status_code == 401, (method, path)
        assert set(response.json()) == {"error"} and response.json()["error"]["status"] == 401
        needed = _needed(path, method)
        if needed == "ingest-or-review":  # every token holds one or the other, or admin
            continue
        response = api.client(wrong[needed]).request(method, url)
        assert response.status_code == 403, (method, path, response.text)
        assert "lacks the" in response.json()["error"]["message"]
    bad = api.client().get("/v1/health", headers={"authorization": "Bearer amber_nope"})
    assert bad.status_code == 401


def _jpeg(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_posts_banks_review_and_evidence(api: Api) -> None:
    original = photo(321, 640, 480)
    admin, ingest = api.client("admin"), api.client("ingest")
    created = admin.post("/v1/banks", json={"name": "known", "label": "execution-photo"})
    assert created.status_code == 201 and created.json()["threshold"] == 31
    assert admin.post("/v1/banks", json={"name": "known"}).status_code == 409
    added = admin.post(
        "/v1/banks/known/entries", files=[("files", ("known.jpg", _jpeg(original), "image/jpeg"))]
    )
    assert added.json()["added"] == 1
    assert admin.get("/v1/banks").json() == [admin.get("/v1/banks/known").json()]
    assert admin.get("/v1/banks/known").json()["entries"] == 1

    copy = _jpeg(ImageOps.mirror(original))
    upload = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "u1", "text": "hi"}'},
        files=[("media", ("copy.jpg", copy, "image/jpeg"))],
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["verdict"] == "remove"
    again = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "u1", "text": "hi"}'},
        files=[("media", ("retry.jpg", copy, "image/jpeg"))],
    )
    assert again.json() == upload.json()  # idempotent: the stored decision, not a rescan
    assert ingest.get("/v1/decisions/u1").json()["verdict"] == "remove"
    assert ingest.get("/v1/decisions/nope").status_code == 404

    (api.media_root / "local.jpg").write_bytes(_jpeg(original))
    local = ingest.post("/v1/posts", json={"id": "j1", "media": [{"path": "local.jpg"}]})
    assert local.json()["verdict"] == "remove"
    escape = ingest.post("/v1/posts", json={"id": "j2", "media": [{"path": "../amber.db"}]})
    assert escape.status_code == 400 and "media root" in escape.json()["error"]["message"]
    bad = ingest.post("/v1/posts", json={"text": "no id"})
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "ValidationError"
    huge = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "big"}'},
        files=[("media", ("big.bin", b"x" * 5_000_000, "image/jpeg"))],
    )
    assert huge.status_code == 413 and huge.json()["error"]["status"] == 413

    poll = {
        "id": "poll",
        "author": "g",
        "text": "Kill him or let him go? One hour to vote.",
        "poll": {
            "question": "?",
            "options": ["Kill", "Let him go"],
            "closes_at": "2030-01-01T00:00:00Z",
        },
    }
    decided = ingest.post("/v1/posts", json=poll).json()
    assert decided["verdict"] == "restrict" and "freeze_poll" in decided["actions"]
    alice, bob = api.client("alice"), api.client("bob")
    queue = alice.get("/v1/review/queue").json()
    assert queue[0]["post_id"] == "poll"  # the deadline puts it first
    held = api.engine.review.item("poll").to_json()  # one JSON form, read a moment later:
    assert {k: v for k, v in queue[0].items() if k != "seconds_left"} == {
        k: v for k, v in held.items() if k != "seconds_left"
    }
    assert 0 <= queue[0]["seconds_left"] - held["seconds_left"] < 60  # the clock ran on
    taken = alice.post("/v1/review/next").json()
    assert taken["post_id"] == "poll" and taken["locked_by"] == "alice"
    assert bob.post("/v1/review/poll/lock").status_code == 409
    outcome = alice.post(
        "/v1/review/poll/decision", json={"outcome": "reject", "reason": "test case"}
    )
    assert outcome.status_code == 200 and outcome.json()["outcome"] == "reject"
    assert outcome.json() == api.engine.review.outcome("poll").to_json()  # type: ignore[union-attr]
    assert all(i["post_id"] != "poll" for i in alice.get("/v1/review/queue").json())

    held = admin.get("/v1/evidence").json()
    assert {"u1", "j1", "poll"} <= {i["post_id"] for i in held}
    assert all(i["preserved_at"] and i["retain_until"] for i in held)
    bag = admin.get("/v1/evidence/u1/bag")
    assert bag.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(bag.content)).namelist()
    assert "bag-u1/bagit.txt" in names and "bag-u1/data/checkpoint.txt" in names
    assert 'amber_decisions_total{verdict="remove"} 2.0' in admin.get("/v1/metrics").text
    csv = admin.get("/v1/banks/known/export").text
    assert csv.count("\n") == 5  # a header row, then the photo's pdq, md5, sha256, orb
    imported = admin.post("/v1/banks/known/import", content=b"pdq,xyz\n")
    assert imported.status_code == 400 and "row 1" in imported.json()["error"]["message"]


def test_removal_orders_and_bank_changes(api: Api) -> None:
    admin, ingest, review = api.client("admin"), api.client("ingest"), api.client("review")
    ingest.post("/v1/posts", json={"id": "ordered", "text": "an ordinary post"})
    ordered = admin.post("/v1/posts/ordered/removal-order")
    assert ordered.status_code == 200, ordered.text
    assert review.get("/v1/review/queue").json()[0]["post_id"] == "ordered"
    assert admin.post("/v1/posts/missing/removal-order").status_code == 404

    admin.post("/v1/banks", json={"name": "temp", "action": "review"})
    image = photo(654, 320, 240)
    admin.post("/v1/banks/temp/entries", files=[("files", ("t.jpg", _jpeg(image), "image/jpeg"))])
    changed = admin.patch("/v1/banks/temp", json={"action": "remove", "threshold": 20})
    assert changed.json()["action"] == "remove" and changed.json()["threshold"] == 20
    bad = admin.patch("/v1/banks/temp", json={"threshold": 99})
    assert bad.status_code == 400
    first = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "t1"}'},
        files=[("media", ("a.jpg", _jpeg(image), "image/jpeg"))],
    )
    assert first.json()["verdict"] == "remove"
    assert admin.delete("/v1/banks/temp").json()["entries_deleted"] == 1
    after = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "t2"}'},
        files=[("media", ("a.jpg", _jpeg(image), "image/jpeg"))],
    )
    assert after.json()["verdict"] == "allow"  # a deleted bank matches nothing
    assert admin.get("/v1/banks/temp").status_code == 404


def test_repeats_race_to_one_answer_and_review_outcomes_reach_the_platform(api: Api) -> None:
    image = _jpeg(photo(777, 320, 240))

    def send(_: int) -> str:
        response = api.client("ingest").post(
            "/v1/posts/upload",
            data={"post": '{"id": "race"}'},
            files=[("media", ("r.jpg", image, "image/jpeg"))],
        )
        return str(response.json()["verdict"])

    with ThreadPoolExecutor(8) as pool:
        verdicts = set(pool.map(send, range(8)))
    assert len(verdicts) == 1
    assert api.engine.decisions.get("race").scan_count == 1

    ingest, review = api.client("ingest"), api.client("review")
    poll = {
        "id": "to-review",
        "text": "Kill him or let him go? Vote now.",
        "poll": {"question": "?", "options": ["Kill", "Let him go"]},
    }
    ingest.post("/v1/posts", json=poll)
    before = ingest.get("/v1/decisions/to-review").json()
    assert before["review"] == {"state": "pending"}
    review.post("/v1/review/to-review/lock")
    review.post(
        "/v1/review/to-review/decision",
        json={"outcome": "confirm", "action": "remove", "reason": "harm poll"},
    )
    after = ingest.get("/v1/decisions/to-review").json()["review"]
    assert after["state"] == "confirmed" and after["action"] == "remove"
    assert after["reviewer"] == "review" and after["reason"] == "harm poll"
    missing = ingest.get("/v1/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    assert "bearer" in api.client().get("/v1/health").headers["www-authenticate"].lower()
    bad_csv = api.client("admin").post("/v1/banks/known/import", content=b"pdq,\xff\xfe\n")
    assert bad_csv.status_code in (400, 404) and "error" in bad_csv.json()


def test_liveness_needs_no_token_and_no_database(api: Api) -> None:
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(api.engine.db, "before_cursor_execute", seen)
    try:
        live = api.client().get("/v1/live")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert statements == []
        assert api.client("ingest").get("/v1/health").status_code == 200
        assert statements  # the listener does see the database work of other routes
    finally:
        sa.event.remove(api.engine.db, "before_cursor_execute", seen)


def test_every_request_is_one_json_line_in_the_access_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="amber.access")
    api.client("ingest").get("/v1/health")
    api.client().get("/v1/health")
    api.client("review").get("/v1/banks")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "amber.access"]
    assert [(line["path"], line["status"], line["token"]) for line in lines] == [
        ("/v1/health", 200, "ingest"),
        ("/v1/health", 401, None),
        ("/v1/banks", 403, "review"),
    ]
    first = lines[0]
    assert set(first) == {"method", "path", "status", "duration_ms", "token", "client"}
    assert first["method"] == "GET" and first["client"] == "testclient"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0


def _references(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", page)


def test_docs_and_redoc_load_everything_from_the_app_itself(api: Api) -> None:
    client = api.client()
    for page_url in ("/docs", "/redoc"):
        page = client.get(page_url)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        found = [a or b for a, b in _references(page.text)]
        spec = 'spec-url="/openapi.json"' in page.text or "/openapi.json" in found
        assert spec, page_url
        assets = [u for u in found if u != "/openapi.json"]
        assert len(assets) >= 2, (page_url, found)  # a script and a favicon at least
        for url in [*assets, "/openapi.json"]:
            assert url.startswith("/") and not url.startswith("//"), (page_url, url)
            fetched = client.get(url)
            assert fetched.status_code == 200 and len(fetched.content) > 1000, url
        assert "http://" not in page.text and "https://" not in page.text
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    assert client.get("/docs/assets/../../etc/passwd").status_code == 404
    assert client.get("/docs/assets/nothing.js").status_code == 404


def test_the_checked_in_http_reference_is_current() -> None:
    current = render_markdown(openapi_spec())
    written = (ROOT / "docs" / "http.md").read_text(encoding="utf-8")
    assert written == current, "docs/http.md is stale: python -m amber.api.docs docs/http.md"
    assert "### `GET /v1/live`" in written and "Token scope: `admin`" in written


# -- one real process ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_amber_serve_answers_on_a_port_and_logs_each_request_to_stderr(
    tmp_path: Path, database: str
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        token = engine.tokens.create("ops", parse_scopes("ingest"))[1]
    port = _free_port()
    command = ["serve", "--port", str(port), "--db", database, "--vault", str(tmp_path / "vault")]
    process = subprocess.Popen(
        [sys.executable, "-m", "amber", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                live = httpx.get(url + "/v1/live")
                break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"serve exited {process.poll()}")
            time.sleep(0.1)
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        health = httpx.get(url + "/v1/health", headers={"authorization": f"Bearer {token}"})
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert [(line["path"], line["status"], line["token"]) for line in lines[-2:]] == [
        ("/v1/live", 200, None),
        ("/v1/health", 200, "ops"),
    ]
    assert lines[-1]["client"] == "127.0.0.1" and lines[-1]["method"] == "GET"
