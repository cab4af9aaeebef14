"""The API under hostile or unlucky input (issue 12, findings 12 and 13): every bad request is
a 4xx naming what was wrong, bodies over the limit get 413 however they are sent, zip
member names are safe to extract anywhere, a media path cannot be swapped for a symlink
after it was checked, failed exports leave no ``exported`` record, locks are released only
by their holder, a boolean is not a number, and no page loads anything from elsewhere."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import sys
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import Databases

LIMIT = 200_000
POLL = {
    "text": "Kill him or let him go? You have one hour to vote.",
    "poll": {"question": "Decide", "options": ["Kill him", "Let him go"]},
}


@dataclass
class Api:
    app: FastAPI
    engine: Engine
    tokens: dict[str, str]
    media_root: Path

    def client(self, token: str) -> TestClient:
        return TestClient(self.app, headers={"authorization": f"Bearer {self.tokens[token]}"})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("hardening")
    media = root / "media"
    media.mkdir()
    with databases.new(root) as db, open_engine(db=db, vault=root / "vault") as engine:
        tokens = {
            name: engine.tokens.create(name, parse_scopes(scopes))[1]
            for name, scopes in (
                ("ingest", "ingest"),
                ("alice", "review"),
                ("bob", "review"),
                ("admin", "admin"),
            )
        }
        app = create_app(engine, media_root=media, max_body=LIMIT)
        with TestClient(app):
            yield Api(app, engine, tokens, media)


def _jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    photo(seed, 320, 240).save(out, "JPEG", quality=90)
    return out.getvalue()


# -- unhandled 500s become 4xx naming the field --------------------------------------------


def test_a_nul_in_a_media_path_or_in_the_url_is_a_400_naming_it(api: Api) -> None:
    ingest = api.client("ingest")
    answer = ingest.post("/v1/posts", json={"id": "nul", "media": [{"path": "a\x00.jpg"}]})
    assert answer.status_code == 400, answer.text
    assert "media[0].path" in answer.json()["error"]["message"]
    for url in ("/v1/decisions/a%00b", "/v1/decisions?author=a%00b"):
        answer = ingest.get(url)
        assert answer.status_code == 400, (url, answer.text)
        assert "NUL" in answer.json()["error"]["message"]


def test_an_upload_name_too_long_for_a_file_system_is_a_400_naming_it(api: Api) -> None:
    for route, token, form, field in (
        ("/v1/posts/upload", "ingest", {"post": '{"id": "long-name"}'}, "media"),
        ("/v1/banks/long/entries", "admin", {}, "files"),
    ):
        if token == "admin":
            api.client("admin").post("/v1/banks", json={"name": "long"})
        answer = api.client(token).post(
            route, data=form, files=[(field, ("x" * 300 + ".jpg", _jpeg(1), "image/jpeg"))]
        )
        assert answer.status_code == 400, (route, answer.text)
        assert f"{field}[0]" in answer.json()["error"]["message"]


@pytest.mark.parametrize("route", ["/v1/review/queue", "/v1/decisions"])
@pytest.mark.parametrize("limit", ["99999999999999999999999", "-1", "0"])
def test_a_limit_out_of_range_is_a_422_naming_it(api: Api, route: str, limit: str) -> None:
    answer = api.client("admin").get(route, params={"limit": limit})
    assert answer.status_code == 422, answer.text
    assert "limit" in answer.json()["error"]["message"]


# -- chunked bodies over the limit ---------------------------------------------------------


async def _chunks(total: int, piece: bytes) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def _stream(api: Api, token: str, method: str, url: str, body: bytes, kind: str) -> httpx.Response:
    """Send ``body`` chunked (no content-length), through httpx's ASGI transport."""

    async def send() -> httpx.Response:
        async def content() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 16_384):
                yield body[i : i + 16_384]

        transport = httpx.ASGITransport(app=api.app)
        headers = {"authorization": f"Bearer {api.tokens[token]}", "content-type": kind}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            request = client.build_request(method, url, content=content(), headers=headers)
            assert "content-length" not in request.headers
            assert request.headers["transfer-encoding"] == "chunked"
            return await client.send(request)

    return asyncio.run(send())


def test_chunked_bodies_over_the_limit_get_413(api: Api) -> None:
    api.client("admin").post("/v1/banks", json={"name": "chunked"})
    big_json = b'{"id": "chunked", "text": "' + b"x" * (LIMIT * 2) + b'"}'
    boundary = "amberboundary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="post"\r\n\r\n{{"id": "c2"}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + b"\xff" * (LIMIT * 2)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    for token, url, body, kind in (
        ("ingest", "/v1/posts", big_json, "application/json"),
        ("ingest", "/v1/posts/upload", multipart, f"multipart/form-data; boundary={boundary}"),
        ("admin", "/v1/banks/chunked/import", b"md5," + b"0" * (LIMIT * 2), "text/csv"),
    ):
        answer = _stream(api, token, "POST", url, body, kind)
        assert answer.status_code == 413, (url, answer.status_code, answer.text)
        assert answer.json()["error"]["status"] == 413
    small = _stream(api, "ingest", "POST", "/v1/posts", b'{"id": "small"}', "application/json")
    assert small.status_code == 200, small.text  # under the limit, chunked is fine


# -- evidence bags ---------------------------------------------------------------------------


def _zip_member_is_safe(name: str) -> bool:
    windows = PureWindowsPath(name)
    return (
        "\\" not in name
        and ":" not in name
        and not name.startswith("/")
        and not windows.drive
        and not windows.is_absolute()
        and ".." not in name.split("/")
        and "\x00" not in name
    )


def test_bag_zip_member_names_are_safe_for_any_extractor(api: Api) -> None:
    hostile = "..\\..\\Windows\\C:evil.."
    (api.media_root / "bagged.jpg").write_bytes(_jpeg(5))
    decided = api.client("ingest").post(
        "/v1/posts", json={"id": hostile, **POLL, "media": [{"path": "bagged.jpg"}]}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["verdict"] != "allow"  # preserved
    from urllib.parse import quote

    bag = api.client("admin").get(f"/v1/evidence/{quote(hostile, safe='')}/bag")
    assert bag.status_code == 200, bag.text
    names = zipfile.ZipFile(io.BytesIO(bag.content)).namelist()
    assert names and all(_zip_member_is_safe(n) for n in names), names
    assert len({n.split("/")[0] for n in names}) == 1  # one top folder: the bag
    disposition = bag.headers["content-disposition"]
    assert "\\" not in disposition and ".." not in disposition and "/" not in disposition


def test_a_failed_export_is_not_recorded_as_exported(api: Api) -> None:
    (api.media_root / "lost.jpg").write_bytes(_jpeg(6))
    api.client("ingest").post(
        "/v1/posts", json={"id": "lost", **POLL, "media": [{"path": "lost.jpg"}]}
    )
    vault = api.engine.open_vault()
    sha = vault.item("lost").objects["media"][0]["sha256"]
    copy = api.engine.vault_path / "objects" / "sha256" / sha[:2] / sha[2:]
    copy.parent.chmod(0o700)
    copy.unlink()  # an unlucky disk lost the evidentiary copy
    answer = api.client("admin").get("/v1/evidence/lost/bag")
    assert answer.status_code >= 400
    exported = [
        e.record
        for e in api.engine.open_vault().log.entries
        if e.record.get("post_id") == "lost" and e.record.get("event") == "exported"
    ]
    assert exported == []


# -- the media root ------------------------------------------------------------------------


def _inside_submit() -> bool:
    """Is a thread inside ``Engine.submit`` (then waiting for the write lock we hold)?"""
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == "submit" and frame.f_code.co_filename.endswith(
                os.path.join("amber", "engine.py")
            ):
                return True
            frame = frame.f_back  # type: ignore[assignment]
    return False


def test_a_symlink_swapped_in_after_the_check_cannot_escape_the_media_root(
    api: Api, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.jpg"  # outside the media root
    secret.write_bytes(_jpeg(7))
    target = api.media_root / "swap.jpg"
    target.write_bytes(_jpeg(8))
    symlinked = api.media_root / "static-link.jpg"
    symlinked.symlink_to(secret)
    refused = api.client("ingest").post(
        "/v1/posts", json={"id": "static-link", "media": [{"path": "static-link.jpg"}]}
    )
    assert refused.status_code == 400 and "media[0].path" in refused.json()["error"]["message"]

    answers: list[httpx.Response] = []
    ingest = api.client("ingest")
    with api.engine.write_lock:  # the request passes its checks, then waits for the lock
        worker = threading.Thread(
            target=lambda: answers.append(
                ingest.post("/v1/posts", json={"id": "swap", "media": [{"path": "swap.jpg"}]})
            )
        )
        worker.start()
        while not _inside_submit():
            if not worker.is_alive():
                break
            threading.Event().wait(0.01)
        target.unlink()
        target.symlink_to(secret)  # the attacker's swap, after the check
    worker.join()
    assert answers and answers[0].status_code in (200, 400), answers[0].text
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    if answers[0].status_code == 200:
        held = api.engine.review.media_hashes("swap")
        assert held and all(m.get("sha256") != secret_sha for m in held), held


# -- locks and numbers -----------------------------------------------------------------------


def test_releasing_a_lock_you_do_not_hold_is_refused(api: Api) -> None:
    api.client("ingest").post("/v1/posts", json={"id": "held", **POLL})
    alice, bob = api.client("alice"), api.client("bob")
    assert alice.post("/v1/review/held/lock").status_code == 200
    stolen = bob.delete("/v1/review/held/lock")
    assert stolen.status_code == 409, stolen.text
    assert "alice" in stolen.json()["error"]["message"]
    assert api.engine.review.item("held").locked_by == "alice"
    assert alice.delete("/v1/review/held/lock").status_code == 200
    again = alice.delete("/v1/review/held/lock")
    assert again.status_code == 409 and "no lock" in again.json()["error"]["message"]


def test_a_boolean_is_not_a_threshold(api: Api) -> None:
    admin = api.client("admin")
    made = admin.post("/v1/banks", json={"name": "booly", "threshold": False})
    assert made.status_code == 422 and "threshold" in made.json()["error"]["message"]
    admin.post("/v1/banks", json={"name": "booly2"})
    changed = admin.patch("/v1/banks/booly2", json={"threshold": True})
    assert changed.status_code == 422 and "threshold" in changed.json()["error"]["message"]
    assert admin.get("/v1/banks/booly2").json()["threshold"] == 31


# -- headers and third-party origins ----------------------------------------------------------


def test_console_and_docs_pages_forbid_framing_and_foreign_code(api: Api) -> None:
    client = TestClient(api.app)
    for url in ("/console/sign-in", "/docs", "/redoc", "/docs/oauth2-redirect"):
        page = client.get(url)
        assert page.status_code == 200, url
        policy = page.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy, (url, policy)
        assert "default-src 'none'" in policy or "default-src 'self'" in policy, policy
        script = re.search(r"script-src ([^;]*)", policy)
        assert script and "'unsafe-inline'" not in script.group(1), (url, policy)
        assert page.headers.get("x-frame-options") == "DENY"
        assert page.headers.get("x-content-type-options") == "nosniff"
        assert page.headers.get("referrer-policy") == "same-origin"
        origins = set(re.findall(r"(?:src|href)=[\"']?(https?://[^/\"'\s>]+)", page.text))
        assert origins <= {"http://testserver"}, (url, origins)
        if url != "/console/sign-in":
            continue
        assert "'unsafe-inline'" not in policy  # the console needs no inline code or style
