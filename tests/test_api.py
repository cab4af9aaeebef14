"""amber serve as a real process on loopback: auth on every route, posts, banks, review."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import ImageOps

from amber.engine import open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import Databases


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    media_root: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"authorization": f"Bearer {self.tokens[token]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    with databases.new(root) as db:
        yield from _serve(root, db)


def _serve(root: Path, db: str) -> Iterator[Server]:
    vault, media = root / "vault", root / "media"
    media.mkdir()
    tokens = {}
    with open_engine(db=db, vault=vault) as engine:
        for name, scopes in (
            ("ingest", "ingest"),
            ("review", "review"),
            ("alice", "review"),
            ("bob", "review"),
            ("admin", "admin"),
            ("ingest-review", "ingest,review"),
        ):
            tokens[name] = engine.tokens.create(name, parse_scopes(scopes))[1]
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "amber",
            "serve",
            "--port",
            str(port),
            "--db",
            db,
            "--vault",
            str(vault),
            "--media-root",
            str(media),
            "--max-body",
            str(4_000_000),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if (
                httpx.get(
                    url + "/v1/health", headers={"authorization": f"Bearer {tokens['ingest']}"}
                ).status_code
                == 200
            ):
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            process.kill()
            _, err = process.communicate()
            raise RuntimeError(f"serve exited {process.returncode}: {err.decode()}")
        time.sleep(0.2)
    yield Server(url, tokens, media)
    process.terminate()
    process.wait(timeout=10)


def _routes(server: Server) -> list[tuple[str, str]]:
    spec = httpx.get(server.url + "/openapi.json").json()
    return [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]


NEEDS = {
    "/v1/health": "ingest",
    "/v1/posts": "ingest",
    "/v1/posts/upload": "ingest",
    "/v1/posts/{post_id}/removal-order": "admin",
    "/v1/decisions/{post_id}": "ingest",
    "/v1/review": "review",
    "/v1/banks": "admin",
    "/v1/evidence": "admin",
    "/v1/metrics": "admin",
}


def _needed(path: str) -> str:
    return next(
        scope
        for prefix, scope in sorted(NEEDS.items(), key=lambda kv: -len(kv[0]))
        if path == prefix or path.startswith(prefix + "/")
    )


def test_every_route_refuses_without_a_token_or_scope(server: Server) -> None:
    routes = _routes(server)
    assert len(routes) >= 15
    wrong = {"ingest": "review", "review": "ingest", "admin": "ingest-review"}
    for method, path in routes:
        url = path.replace("{post_id}", "p1").replace("{name}", "b1")
        with server.client() as anonymous:
            response = anonymous.request(method, url)
        assert response.status_code == 401, (method, path)
        assert set(response.json()) == {"error"} and response.json()["error"]["status"] == 401
        with server.client(wrong[_needed(path)]) as unprivileged:
            response = unprivileged.request(method, url)
        assert response.status_code == 403, (method, path, response.text)
        assert "lacks the" in response.json()["error"]["message"]
    with server.client() as anonymous:
        bad = anonymous.get("/v1/health", headers={"authorization": "Bearer amber_nope"})
    assert bad.status_code == 401


def _jpeg(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_posts_banks_review_and_evidence(server: Server) -> None:
    original = photo(321, 640, 480)
    admin, ingest = server.client("admin"), server.client("ingest")
    created = admin.post("/v1/banks", json={"name": "known", "label": "execution-photo"})
    assert created.status_code == 201 and created.json()["threshold"] == 31
    assert admin.post("/v1/banks", json={"name": "known"}).status_code == 409
    added = admin.post(
        "/v1/banks/known/entries", files=[("files", ("known.jpg", _jpeg(original), "image/jpeg"))]
    )
    assert added.json()["added"] == 1

    copy = _jpeg(ImageOps.mirror(original))
    upload = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "u1", "text": "hi"}'},
        files=[("media", ("copy.jpg", copy, "image/jpeg"))],
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["verdict"] == "remove"
    again = ingest.post("/v1/posts/upload", data={"post": '{"id": "u1"}'})
    assert again.json() == upload.json()  # idempotent: the stored decision, not a rescan
    assert ingest.get("/v1/decisions/u1").json()["verdict"] == "remove"
    assert ingest.get("/v1/decisions/nope").status_code == 404

    (server.media_root / "local.jpg").write_bytes(_jpeg(original))
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
    assert huge.status_code == 413

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
    alice, bob = server.client("alice"), server.client("bob")
    queue = alice.get("/v1/review/queue").json()
    assert queue[0]["post_id"] == "poll"  # the deadline puts it first
    taken = alice.post("/v1/review/next").json()
    assert taken["post_id"] == "poll"
    assert bob.post("/v1/review/poll/lock").status_code == 409
    outcome = alice.post(
        "/v1/review/poll/decision", json={"outcome": "reject", "reason": "test case"}
    )
    assert outcome.status_code == 200 and outcome.json()["outcome"] == "reject"
    assert all(i["post_id"] != "poll" for i in alice.get("/v1/review/queue").json())

    held = admin.get("/v1/evidence").json()
    assert {"u1", "j1", "poll"} <= {i["post_id"] for i in held}
    bag = admin.get("/v1/evidence/u1/bag")
    assert bag.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(bag.content)).namelist()
    assert "bag-u1/bagit.txt" in names and "bag-u1/data/checkpoint.txt" in names
    assert "amber_decisions_total" in admin.get("/v1/metrics").text
    csv = admin.get("/v1/banks/known/export").text
    assert csv.count("\n") == 3
    imported = admin.post("/v1/banks/known/import", content=b"pdq,xyz\n")
    assert imported.status_code == 400 and "row 1" in imported.json()["error"]["message"]


def test_removal_orders_and_bank_changes(server: Server) -> None:
    admin, ingest, review = server.client("admin"), server.client("ingest"), server.client("review")
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


def test_repeats_race_to_one_answer_and_review_outcomes_reach_the_platform(
    server: Server,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    image = _jpeg(photo(777, 320, 240))

    def send(_: int) -> str:
        with server.client("ingest") as client:
            response = client.post(
                "/v1/posts/upload",
                data={"post": '{"id": "race"}'},
                files=[("media", ("r.jpg", image, "image/jpeg"))],
            )
            return str(response.json()["verdict"])

    with ThreadPoolExecutor(8) as pool:
        verdicts = set(pool.map(send, range(8)))
    assert len(verdicts) == 1

    ingest, review = server.client("ingest"), server.client("review")
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
    missing = ingest.get("/v1/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    with server.client() as anonymous:
        assert "bearer" in anonymous.get("/v1/health").headers["www-authenticate"].lower()
    bad_csv = server.client("admin").post("/v1/banks/known/import", content=b"pdq,\xff\xfe\n")
    assert bad_csv.status_code in (400, 404) and "error" in bad_csv.json()
