"""``GET /v1/decisions`` (the list, with ``amber decisions list``'s filters) and
``GET /v1/decisions/{post_id}/explain``, in process through FastAPI's TestClient, on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ImageOps

from amber.api.app import create_app
from amber.engine import Engine
from amber.synthetic import photo
from amber.tokens import parse_scopes


@dataclass
class Served:
    app: object
    tokens: dict[str, str]
    copy: Path

    def client(self, token: str | None = None) -> TestClient:
        headers = {} if token is None else {"authorization": f"Bearer {self.tokens[token]}"}
        return TestClient(self.app, headers=headers)  # type: ignore[arg-type]


@pytest.fixture
def served(
    engine: Engine,
    tmp_path: Path,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
) -> Iterator[Served]:
    """A bank of one photo; a mirrored copy by ann and a text post by bob, scanned."""
    original = photo(50, 640, 480)
    engine.banks.create("known", label="execution")
    engine.banks.add_files("known", [photo_file(50, "known.png", image=original)])
    copy = photo_file(0, "copy.png", image=ImageOps.mirror(original))
    posts = write_posts(
        [
            {"id": "copy", "author": "ann", "media": [{"path": "images/copy.png"}]},
            {"id": "hello", "author": "bob", "text": "hello"},
        ]
    )
    from amber.posts import read_input

    assert len(list(engine.scan(read_input(posts)))) == 2
    tokens = {
        name: engine.tokens.create(name, parse_scopes(scopes))[1]
        for name, scopes in (("ingest", "ingest"), ("review", "review"))
    }
    yield Served(create_app(engine, media_root=tmp_path), tokens, copy)


def _ids(served: Served, query: str = "") -> list[str]:
    response = served.client("ingest").get("/v1/decisions" + query)
    assert response.status_code == 200, response.text
    return [d["post_id"] for d in response.json()]


def test_decisions_list_with_filters(served: Served) -> None:
    listed = served.client("ingest").get("/v1/decisions").json()
    assert [d["post_id"] for d in listed] == ["hello", "copy"]
    assert {"post_id", "verdict", "reasons", "actions", "author", "scanned_at", "post"} <= set(
        listed[0]
    )
    assert _ids(served, "?verdict=remove") == ["copy"]
    assert _ids(served, "?author=bob") == ["hello"]
    assert _ids(served, "?bank=known") == ["copy"]
    assert _ids(served, "?since=2999-01-01T00:00:00") == []
    assert _ids(served, "?until=2999-01-01T00:00:00%2B02:00") == ["hello", "copy"]
    assert _ids(served, "?since=2000-01-01&until=2999-01-01") == ["hello", "copy"]
    assert _ids(served, "?limit=1") == ["hello"]
    bad = served.client("ingest").get("/v1/decisions?verdict=deleted")
    assert bad.status_code == 400 and "verdict 'deleted' is unknown" in bad.text
    assert served.client("ingest").get("/v1/decisions?limit=0").status_code == 422


def test_explain_a_stored_decision(served: Served) -> None:
    ingest = served.client("ingest")
    copy = ingest.get("/v1/decisions/copy/explain")
    assert copy.status_code == 200, copy.text
    body = copy.json()
    assert body["post_id"] == "copy" and body["origin"] == "stored" and body["rederived"]
    assert body["verdict"] == "remove" and body["rules"] == ["bank-match"]
    assert body["nearest"][0]["matches"] is True and body["nearest"][0]["bank"] == "known"
    assert body["stored"]["author"] == "ann"
    hello = ingest.get("/v1/decisions/hello/explain").json()
    assert hello["verdict"] == "allow" and hello["summary"] == "no rule fired"

    # An uploaded post's media are gone after the request; a removed one's were preserved.
    upload = ingest.post(
        "/v1/posts/upload",
        data={"post": '{"id": "u1"}'},
        files=[("media", ("up.png", served.copy.read_bytes(), "image/png"))],
    )
    assert upload.json()["verdict"] == "remove"
    uploaded = ingest.get("/v1/decisions/u1/explain").json()
    assert uploaded["rederived"] is True and uploaded["rules"] == ["bank-match"]
    assert uploaded["note"].startswith("media read from the evidence vault's copies")

    missing = ingest.get("/v1/decisions/nope/explain")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFoundError"


def test_decisions_need_an_ingest_token(served: Served) -> None:
    for url in ("/v1/decisions", "/v1/decisions/copy/explain"):
        assert served.client().get(url).status_code == 401
        refused = served.client("review").get(url)
        assert refused.status_code == 403 and "lacks the" in refused.json()["error"]["message"]
