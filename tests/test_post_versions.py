"""Post ids are scoped to their client, and new content under a known id is a new
version: scanned, decided and stored beside the earlier one, never answered from it.
In process (the engine and the API through httpx's ASGI transport), on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine
from amber.errors import ConflictError
from amber.evidence.vault import Vault
from amber.posts import parse_post
from amber.synthetic import photo
from amber.tokens import parse_scopes

POLL = {
    "id": "p1",
    "author": "g",
    "text": "Kill him or let him go? One hour to vote.",
    "poll": {"question": "?", "options": ["Kill", "Let him go"]},
}
HELLO = {"id": "p1", "author": "g", "text": "hello everyone"}


def test_new_content_under_a_known_id_is_scanned_as_a_new_version(engine: Engine) -> None:
    first = engine.submit(parse_post(POLL, base=Path("."), source="test"))
    assert first.new and first.decision.verdict.value == "restrict"
    edited = engine.submit(parse_post(HELLO, base=Path("."), source="test"))
    assert edited.new and edited.decision.verdict.value == "allow"
    assert edited.decision.version == 2 and edited.to_json()["version"] == 2
    assert engine.decisions.get("p1").verdict.value == "allow"
    kept = engine.decisions.versions("p1")
    assert [(d.version, d.verdict.value) for d in kept] == [(1, "restrict"), (2, "allow")]
    # an edit back is a third version, not the first one's answer
    back = engine.submit(parse_post(POLL, base=Path("."), source="test"))
    assert back.new and back.decision.version == 3 and back.decision.verdict.value == "restrict"


def test_a_retry_with_the_same_content_keeps_its_decision(
    engine: Engine, photo_file: Callable[..., Path], tmp_path: Path
) -> None:
    image = photo_file(5)
    copy = tmp_path / "retry" / "same-bytes.png"  # another name, the same bytes
    copy.parent.mkdir()
    copy.write_bytes(image.read_bytes())
    post = {"id": "m1", "text": "look", "media": [{"path": str(image)}]}
    first = engine.submit(parse_post(post, base=Path("."), source="test"))
    retry = engine.submit(
        parse_post({**post, "media": [{"path": str(copy)}]}, base=Path("."), source="test")
    )
    assert first.new and not retry.new and retry.decision == first.decision
    assert retry.decision.version == 1 and engine.decisions.get("m1").scan_count == 1
    # the same name with other bytes is other content
    image.write_bytes(copy.read_bytes()[:-1] + b"\x00")
    changed = engine.submit(parse_post(post, base=Path("."), source="test"))
    assert changed.new and changed.decision.version == 2


def test_a_scanned_post_is_recognised_when_submitted_again(
    engine: Engine, photo_file: Callable[..., Path], tmp_path: Path
) -> None:
    """A scan digests the content from the hashes it already has; ``submit`` reads the
    files: the two must agree, for a photo and an undecodable file."""
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    post = {
        "id": "s1",
        "text": "look",
        "media": [
            {"path": str(photo_file(6))},
            {"path": str(tmp_path / "clip.mp4")},
        ],
    }
    scanned = [r for r in engine.scan([parse_post(post, base=tmp_path, source="t")], workers=1)]
    assert any(getattr(r, "saved", False) for r in scanned)
    again = engine.submit(parse_post(post, base=tmp_path, source="t"))
    assert not again.new and again.decision.version == 1


def test_two_clients_same_post_id_are_two_posts(engine: Engine) -> None:
    a = engine.submit(parse_post(POLL, base=Path("."), source="test"), client="a")
    b = engine.submit(parse_post(HELLO, base=Path("."), source="test"), client="b")
    assert a.new and b.new
    assert (a.decision.client, a.decision.verdict.value) == ("a", "restrict")
    assert (b.decision.client, b.decision.verdict.value, b.decision.version) == ("b", "allow", 1)
    assert engine.decisions.get("p1", client="a").verdict.value == "restrict"
    assert engine.decisions.get("p1", client="b").verdict.value == "allow"
    with pytest.raises(ConflictError, match="'a', 'b'"):
        engine.decisions.get("p1")  # which one? the caller must say


def test_the_vault_keeps_each_clients_and_each_versions_item(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    from PIL import ImageOps

    original = photo(50, 640, 480)
    engine.banks.create("known", label="execution")
    engine.banks.add_files("known", [photo_file(50, "known.png", image=original)])
    mirrored = photo_file(1, "one.png", image=ImageOps.mirror(original))
    flipped = photo_file(2, "two.png", image=ImageOps.flip(ImageOps.mirror(original)))
    one = {"id": "p1", "media": [{"path": str(mirrored)}]}
    two = {"id": "p1", "text": "edited", "media": [{"path": str(flipped)}]}
    for client, post in (("a", one), ("b", one), ("a", two)):
        done = engine.submit(parse_post(post, base=Path("."), source="test"), client=client)
        assert done.new and done.decision.verdict.value == "remove"
    vault: Vault = engine.open_vault()
    held = {(i.client, i.post_id, i.version): i for i in vault.items().values()}
    assert set(held) == {("a", "p1", 1), ("b", "p1", 1), ("a", "p1", 2)}
    media = {k: i.objects["media"][0]["sha256"] for k, i in held.items()}
    assert media[("a", "p1", 1)] == hashlib.sha256(mirrored.read_bytes()).hexdigest()
    assert media[("a", "p1", 2)] == hashlib.sha256(flipped.read_bytes()).hexdigest()
    with pytest.raises(ConflictError, match="p1"):
        vault.item("p1")  # two clients hold it: the key must say which
    assert vault.item(held[("a", "p1", 2)].key).version == 2
    assert vault.item(json.dumps(["b", "p1", 1])).client == "b"


@dataclass
class Served:
    app: object
    tokens: dict[str, str]

    def client(self, token: str) -> TestClient:
        headers = {"authorization": f"Bearer {self.tokens[token]}"}
        return TestClient(self.app, headers=headers)  # type: ignore[arg-type]


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[Served]:
    tokens = {
        name: engine.tokens.create(name, parse_scopes(scopes))[1]
        for name, scopes in (("a", "ingest"), ("b", "ingest"), ("ops", "admin"))
    }
    yield Served(create_app(engine, media_root=tmp_path), tokens)


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, 320, 240).save(buffer, format="PNG")
    return buffer.getvalue()


def test_another_token_cannot_get_or_overwrite_a_clients_post(served: Served) -> None:
    a, b, ops = served.client("a"), served.client("b"), served.client("ops")
    mine = a.post("/v1/posts", json=POLL).json()
    assert mine["verdict"] == "restrict"
    theirs = b.post("/v1/posts", json=HELLO)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["verdict"] == "allow"  # its own post, scanned: not a's answer
    assert a.get("/v1/decisions/p1").json()["verdict"] == "restrict"
    assert mine["client"] == "a" and mine["version"] == 1
    assert theirs.json()["client"] == "b" and theirs.json()["version"] == 1
    assert a.get("/v1/decisions/p1").json()["verdict"] == "restrict"
    assert b.get("/v1/decisions/p1").json()["verdict"] == "allow"
    assert b.get("/v1/decisions/p1/explain").json()["verdict"] == "allow"
    assert [d["client"] for d in b.get("/v1/decisions").json()] == ["b"]
    # admin sees every client's, and says which when two hold the id
    assert ops.get("/v1/decisions/p1").status_code == 409
    assert ops.get("/v1/decisions/p1?client=a").json()["verdict"] == "restrict"
    assert {d["client"] for d in ops.get("/v1/decisions").json()} == {"a", "b"}
    # only a's own post can be read by a; an unknown id of b's is 404 for a
    b.post("/v1/posts", json={"id": "b-only", "text": "hi"})
    assert a.get("/v1/decisions/b-only").status_code == 404
    assert a.get("/v1/decisions/b-only?client=b").status_code == 404


def test_an_edited_upload_is_decided_anew_and_says_its_version(served: Served) -> None:
    a = served.client("a")
    image = _png(9)
    first = a.post(
        "/v1/posts/upload",
        data={"post": json.dumps(POLL)},
        files=[("media", ("x.png", image, "image/png"))],
    ).json()
    retry = a.post(
        "/v1/posts/upload",
        data={"post": json.dumps(POLL)},
        files=[("media", ("renamed.png", image, "image/png"))],
    ).json()
    assert first == retry and first["verdict"] == "restrict"
    edited = a.post(
        "/v1/posts/upload",
        data={"post": json.dumps(HELLO)},
        files=[("media", ("x.png", image, "image/png"))],
    ).json()
    assert edited["verdict"] == "allow"
    assert first["version"] == 1 and edited["version"] == 2
    assert a.get("/v1/decisions/p1").json()["version"] == 2
