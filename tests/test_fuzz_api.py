"""API fuzzing (schemathesis) against the live OpenAPI of the app ``amber serve`` runs, in
process through its ASGI interface: every operation gets generated requests, with a token
that holds every scope, bounded by a number of examples per operation. A 500, a status
the operation does not document, a response body that is not what the spec says for its
status, or a content type the spec does not declare fails the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from amber.api.app import create_app, openapi_spec
from amber.engine import open_engine
from amber.synthetic import photo
from amber.tokens import parse_scopes

#: What the run asserts: every status an operation answers is one it documents (its
#: ``responses=``, ``amber.api.deps.errors``), with the body and content type documented
#: for it; a 500 is never right.
CHECKS = [
    checks.status_code_conformance,
    checks.not_a_server_error,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class App:
    def __init__(self, app: object, token: str, reviewer: str) -> None:
        self.app = app
        self.headers = {"authorization": f"Bearer {token}"}
        self.reviewer = {"authorization": f"Bearer {reviewer}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The app on a fresh SQLite database and vault, a bank and a decided post in it."""
    root = tmp_path_factory.mktemp("api-fuzz")
    media = root / "media"
    media.mkdir()
    photo(1, 64, 48).save(media / "a.png")
    with open_engine(db=root / "a.db", vault=root / "vault") as engine:
        app = create_app(engine, media_root=media, max_body=1_000_000)
        _, token = engine.tokens.create("fuzz", parse_scopes("ingest,review,admin"))
        _, reviewer = engine.tokens.create("reviewer", parse_scopes("review"))
        with TestClient(app) as client:  # the lifespan runs, as under amber serve
            client.headers["authorization"] = f"Bearer {token}"
            assert client.post("/v1/banks", json={"name": "known"}).status_code == 201
            posted = client.post("/v1/posts", json={"id": "p1", "media": [{"path": "a.png"}]})
            assert posted.status_code == 200, posted.text
            yield App(app, token, reviewer)


@pytest.fixture(scope="module")
def api_schema(live: App) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", live.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_its_spec_says(case: Case, live: App) -> None:
    case.call_and_validate(headers=live.headers, checks=CHECKS)


def test_the_fuzzed_app_still_holds_its_post(live: App) -> None:
    with TestClient(live.app, headers=live.headers) as client:
        assert client.get("/v1/decisions/p1").status_code == 200


def test_spec_lists_every_route(api_schema: schemathesis.BaseSchema) -> None:
    assert sum(1 for _ in api_schema.get_all_operations()) >= 20


# Cases a fuzz run gave as soon as it tried them, answered 500 before issue 12 (finding
# 13: huge `limit`, NUL in paths): each must be a clean refusal.
KNOWN_500 = [
    ("/v1/decisions", "GET", {"query": {"limit": 10**20}}),
    ("/v1/review/queue", "GET", {"query": {"limit": 10**20}}),
    ("/v1/posts", "POST", {"body": {"id": "x", "media": [{"path": "a\x00b"}]}}),
]


@pytest.mark.parametrize(("path", "method", "parts"), KNOWN_500)
def test_known_500s_are_refused_cleanly(
    api_schema: schemathesis.BaseSchema, live: App, path: str, method: str, parts: dict
) -> None:
    case = api_schema[path][method].Case(**parts)
    case.call_and_validate(headers=live.headers, checks=CHECKS)


def test_every_error_is_documented_with_the_one_error_body() -> None:
    """Each operation behind a token documents 401, 403 and 503, one taking a body 413,
    and every error status it documents (422 too) has the body amber sends."""
    spec = openapi_spec()
    error = {"$ref": "#/components/schemas/Error"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            answers = operation["responses"]
            if operation.get("security"):
                assert {"401", "403", "503"} <= set(answers), where
            if "requestBody" in operation:
                assert "413" in answers, where
            for status, answer in answers.items():
                if int(status) >= 400:
                    assert answer["content"] == {"application/json": {"schema": error}}, (
                        f"{where} {status}"
                    )
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"type", "message", "status"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


#: Refusals amber really gives, each checked against what its operation documents:
#: (path, method, parts of the request, whose token, the status it must be).
REFUSALS = [
    ("/v1/banks", "POST", {"body": {"name": "known"}}, "admin", 409),
    ("/v1/banks/{name}", "GET", {"path_parameters": {"name": "nope"}}, "admin", 404),
    ("/v1/banks", "GET", {}, "reviewer", 403),
    ("/v1/decisions", "GET", {}, None, 401),
    ("/v1/decisions", "GET", {"query": {"verdict": "maybe"}}, "admin", 400),
    ("/v1/decisions", "GET", {"query": {"limit": 0}}, "admin", 422),
    ("/v1/posts", "POST", {"body": {"id": "x" * 1_000_001}}, "admin", 413),
    ("/v1/review/{post_id}/lock", "POST", {"path_parameters": {"post_id": "nope"}}, "admin", 404),
    ("/v1/review/{post_id}/lock", "DELETE", {"path_parameters": {"post_id": "p1"}}, "admin", 409),
    ("/v1/evidence/{post_id}/bag", "GET", {"path_parameters": {"post_id": "p1"}}, "admin", 404),
]


@pytest.mark.parametrize(("path", "method", "parts", "who", "status"), REFUSALS)
def test_refusals_are_as_documented(
    api_schema: schemathesis.BaseSchema,
    live: App,
    path: str,
    method: str,
    parts: dict,
    who: str | None,
    status: int,
) -> None:
    headers = {"admin": live.headers, "reviewer": live.reviewer, None: {}}[who]
    case = api_schema[path][method].Case(**parts)
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    assert response.status_code == status, response.text
