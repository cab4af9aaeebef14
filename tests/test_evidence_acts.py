"""Evidence where a person acted: a removal order (for a post amber removed, and for one
it allowed, whose bytes the platform sends with the order) and a reviewer's confirmation
are custody events of the post's vault item, so an exported bag shows who acted, when,
and under what authority; a confirmation without evidence is refused, and orders
without evidence are reported."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.decisions import NewDecision
from amber.engine import Engine, open_engine
from amber.identity import item_key
from amber.policy import Outcome, Verdict
from amber.store.db import _alembic_config, _create_engine, database_url
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import run_cli

ORDER = {
    "reference": "TCO-2026-0117",
    "authority": "Bundeskriminalamt",
    "legal_basis": "Regulation (EU) 2021/784, Art. 3",
}


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, 320, 240).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Service:
    engine: Engine
    admin: TestClient
    ingest: TestClient
    reviewer: TestClient
    env: dict[str, str]


@pytest.fixture
def service(database: str, tmp_path: Path) -> Iterator[Service]:
    """An engine whose bank ``known`` holds photo 5 (action remove), and API clients with
    an admin token ``platform-legal``, an ingest token and a review token ``alice``."""
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        (tmp_path / "known.jpg").write_bytes(_jpeg(5))
        engine.banks.add_files("known", [tmp_path / "known.jpg"])
        app = create_app(engine)
        clients = []
        for name, scopes in (
            ("platform-legal", "admin"),
            ("ingest", "ingest"),
            ("alice", "review"),
        ):
            token = engine.tokens.create(name, parse_scopes(scopes))[1]
            clients.append(
                TestClient(
                    app, headers={"authorization": f"Bearer {token}"}, raise_server_exceptions=False
                )
            )
        with clients[0], clients[1], clients[2]:
            env = {"AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault")}
            yield Service(engine, *clients, env=env)


def _upload(client: TestClient, post_id: str, data: bytes) -> dict[str, Any]:
    answer = client.post(
        "/v1/posts/upload",
        data={"post": json.dumps({"id": post_id, "text": "a photo"})},
        files=[("media", ("a.jpg", data, "image/jpeg"))],
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _custody(service: Service, post_id: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The custody records of ``post_id``'s bag, as ``amber evidence export`` writes it."""
    out = tmp_path / f"bag-{post_id}"
    done = run_cli("evidence", "export", post_id, "--out", str(out), env=service.env)
    assert done.returncode == 0, done.stderr
    lines = (out / "data" / "custody.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_removal_order_for_a_removed_post_is_a_custody_event_of_its_bag(
    service: Service, tmp_path: Path
) -> None:
    assert _upload(service.ingest, "p1", _jpeg(5))["verdict"] == "remove"
    ordered = service.admin.post("/v1/posts/p1/removal-order", json=ORDER)
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["post_id"] == "p1" and "deadline" in ordered.json()
    # The request shape of before (no body at all) still works, and is recorded too.
    assert service.admin.post("/v1/posts/p1/removal-order").status_code == 200

    custody = _custody(service, "p1", tmp_path)
    orders = [r for r in custody if r["event"] == "removal_order"]
    assert len(orders) == 2, custody
    assert {k: orders[0][k] for k in ORDER} == ORDER
    assert orders[0]["sent_by"] == "platform-legal"
    assert orders[0]["received_at"] and orders[0]["deadline"]
    assert orders[1]["reference"] is None and orders[1]["sent_by"] == "platform-legal"
    assert custody[0]["event"] == "preserved"
    verified = run_cli("evidence", "verify", "--db", service.env["AMBER_DB"], env=service.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_removal_order_for_an_allowed_post_preserves_the_bytes_sent_with_it(
    service: Service, tmp_path: Path
) -> None:
    sent = _jpeg(9)
    assert _upload(service.ingest, "p2", sent)["verdict"] == "allow"
    url = "/v1/posts/p2/removal-order"

    bare = service.admin.post(url, json=ORDER)
    assert bare.status_code == 400, bare.text
    message = bare.json()["error"]["message"]
    assert "media" in message and "multipart" in message, message

    wrong = service.admin.post(
        url,
        data={"order": json.dumps(ORDER)},
        files=[("media", ("a.jpg", _jpeg(10), "image/jpeg"))],
    )
    assert wrong.status_code == 409, wrong.text
    assert "media[0]" in wrong.json()["error"]["message"]
    assert service.engine.decisions.get("p2").review_state == "none"  # nothing stored
    assert not service.engine.open_vault().pending()

    ordered = service.admin.post(
        url,
        data={"order": json.dumps(ORDER)},
        files=[("media", ("a.jpg", sent, "image/jpeg"))],
    )
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["evidence"] == "preserved"
    item = service.engine.open_vault().item("p2")
    assert item.verdict == "allow"
    assert [m["sha256"] for m in item.objects["media"]] == [hashlib.sha256(sent).hexdigest()]
    custody = _custody(service, "p2", tmp_path)
    assert [r["event"] for r in custody][:2] == ["preserved", "removal_order"]
    assert custody[1]["reference"] == ORDER["reference"]
    bag = tmp_path / "bag-p2" / "data"
    assert json.loads((bag / "post.json").read_text())["id"] == "p2"
    assert [f.read_bytes() for f in (bag / "media").iterdir()] == [sent]
    assert service.engine.decisions.get("p2").review_state == "pending"


def test_a_removal_order_for_an_allowed_text_post_needs_no_bytes(
    service: Service, tmp_path: Path
) -> None:
    service.ingest.post("/v1/posts", json={"id": "t1", "text": "an ordinary post"})
    ordered = service.admin.post("/v1/posts/t1/removal-order", json=ORDER)
    assert ordered.status_code == 200, ordered.text
    custody = _custody(service, "t1", tmp_path)
    assert [r["event"] for r in custody][:2] == ["preserved", "removal_order"]
    assert service.engine.missing_evidence() == []


def test_a_reviewers_confirmation_is_a_custody_event_of_the_post(
    service: Service, tmp_path: Path
) -> None:
    assert _upload(service.ingest, "p3", _jpeg(9))["verdict"] == "allow"
    ordered = service.admin.post(
        "/v1/posts/p3/removal-order",
        data={"order": json.dumps(ORDER)},
        files=[("media", ("a.jpg", _jpeg(9), "image/jpeg"))],
    )
    assert ordered.status_code == 200, ordered.text
    assert service.reviewer.post("/v1/review/p3/lock").status_code == 200
    decided = service.reviewer.post(
        "/v1/review/p3/decision",
        json={"outcome": "confirm", "action": "remove", "reason": "order TCO-2026-0117"},
    )
    assert decided.status_code == 200, decided.text
    custody = _custody(service, "p3", tmp_path)
    reviews = [r for r in custody if r["event"] == "reviewed"]
    assert len(reviews) == 1, custody
    assert reviews[0]["reviewer"] == "alice" and reviews[0]["outcome"] == "confirm"
    assert reviews[0]["action"] == "remove" and reviews[0]["reason"] == "order TCO-2026-0117"
    assert reviews[0]["decided_at"]


def test_confirming_a_post_without_evidence_is_refused_and_nothing_is_recorded(
    service: Service,
) -> None:
    engine = service.engine
    engine.decisions.save(
        [
            NewDecision(
                "lost",
                Outcome(Verdict.review, [], ["review"]),
                post='{"id": "lost"}',
                source="test",
                media=[],
            )
        ],
        now=engine.clock(),
    )
    assert service.reviewer.post("/v1/review/lost/lock").status_code == 200
    refused = service.reviewer.post(
        "/v1/review/lost/decision",
        json={"outcome": "confirm", "action": "remove", "reason": "seen"},
    )
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert "no evidence" in message and "lost" in message, message
    assert engine.decisions.get("lost").review_state == "pending"
    assert engine.review.outcome("lost") is None
    # Rejecting needs no evidence: nothing is removed.
    rejected = service.reviewer.post(
        "/v1/review/lost/decision", json={"outcome": "reject", "reason": "a mistake"}
    )
    assert rejected.status_code == 200, rejected.text


def test_a_removal_order_without_evidence_is_reported_missing(service: Service) -> None:
    engine = service.engine
    engine.decisions.save(
        [
            NewDecision(
                "quiet",
                Outcome(Verdict.allow, [], []),
                post='{"id": "quiet"}',
                source="test",
                media=[],
            )
        ],
        now=engine.clock(),
    )
    assert engine.missing_evidence() == []
    # An order stored without its evidence (as every order was before orders were
    # preserved): the decision store alone records it.
    engine.decisions.removal_order("quiet", received_at=engine.clock())
    missing = engine.missing_evidence()
    assert [(m.post_id, m.verdict, m.state) for m in missing] == [("quiet", "allow", "missing")]
    assert engine.with_evidence(engine.decisions.get("quiet")).evidence == "missing"


def _at_revision(database: str, revision: str, *, down: bool = False) -> sa.Engine:
    engine = _create_engine(database_url(database))
    config = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # atomic DDL, as amber.store.db.migrate runs it
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    return engine


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_0008_adds_removal_ordered_at_and_downgrade_drops_it(database: str) -> None:
    engine = _at_revision(database, "0007")
    try:
        with engine.begin() as conn:  # a decision with media, which a rebuild must keep
            decision = conn.execute(
                sa.text(
                    "INSERT INTO decisions (post_id, verdict, reasons, actions, post, source, "
                    "policy, amber_version, first_scanned_at, scanned_at, scan_count) VALUES "
                    "('p1', 'remove', '[]', '[]', '{}', 't', 'p', 'v', :t, :t, 1) RETURNING id"
                ),
                {"t": "2026-12-01 12:00:00"},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO post_media (decision_id, position, path) VALUES (:d, 0, 'a.jpg')"
                ),
                {"d": decision},
            )
        for table in ("decisions", "decision_versions"):
            assert "removal_ordered_at" not in _columns(engine, table)
        _at_revision(database, "0008").dispose()
        for table in ("decisions", "decision_versions"):
            assert "removal_ordered_at" in _columns(engine, table)
        _at_revision(database, "0007", down=True).dispose()
        for table in ("decisions", "decision_versions"):
            assert "removal_ordered_at" not in _columns(engine, table)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM decisions")).scalar() == 1
            assert conn.execute(sa.text("SELECT COUNT(*) FROM post_media")).scalar() == 1
    finally:
        engine.dispose()


def _events(engine: Engine, key: str) -> list[str]:
    """The custody events logged for the vault item ``key`` (``item_key``)."""
    vault = engine.open_vault()
    item = vault.items().get(key)
    return [] if item is None else [vault.log.entries[i].record["event"] for i in item.records]


def _client(service: Service, name: str, scopes: str) -> TestClient:
    token = service.engine.tokens.create(name, parse_scopes(scopes))[1]
    return TestClient(
        service.admin.app,
        headers={"authorization": f"Bearer {token}"},
        raise_server_exceptions=False,
    )


def test_a_removal_order_for_client_bs_post_leaves_client_as_post_of_the_same_id_alone(
    service: Service,
) -> None:
    engine = service.engine
    with _client(service, "client-a", "ingest") as a, _client(service, "client-b", "ingest") as b:
        assert _upload(a, "p1", _jpeg(9))["verdict"] == "allow"  # A's p1: not kept
        assert _upload(b, "p1", _jpeg(5))["verdict"] == "remove"  # B's p1: preserved
    key_a, key_b = item_key("p1", "client-a", 1), item_key("p1", "client-b", 1)
    assert _events(engine, key_b) == ["preserved"] and _events(engine, key_a) == []

    ambiguous = service.admin.post("/v1/posts/p1/removal-order", json=ORDER)
    assert ambiguous.status_code == 409, ambiguous.text
    assert "client" in ambiguous.json()["error"]["message"]
    # A's stored hash is what bytes sent for A's p1 are checked against, not B's.
    wrong = service.admin.post(
        "/v1/posts/p1/removal-order",
        params={"client": "client-a"},
        data={"order": json.dumps(ORDER)},
        files=[("media", ("a.jpg", _jpeg(5), "image/jpeg"))],
    )
    assert wrong.status_code == 409, wrong.text

    ordered = service.admin.post(
        "/v1/posts/p1/removal-order", params={"client": "client-b"}, json=ORDER
    )
    assert ordered.status_code == 200, ordered.text
    assert (ordered.json()["client"], ordered.json()["version"]) == ("client-b", 1)
    assert _events(engine, key_b) == ["preserved", "removal_order"]
    assert _events(engine, key_a) == []  # nothing staged, preserved or logged for A's p1
    assert not engine.open_vault().pending()
    a_p1 = engine.decisions.get("p1", client="client-a")
    assert (a_p1.removal_ordered_at, a_p1.review_state) == (None, "none")
    b_p1 = engine.decisions.get("p1", client="client-b")
    assert b_p1.removal_ordered_at is not None and b_p1.review_state == "pending"
    assert engine.missing_evidence() == []
    assert engine.with_evidence(a_p1).evidence == "not_needed"


def test_a_removal_order_is_for_the_version_it_found(service: Service) -> None:
    engine = service.engine
    assert _upload(service.ingest, "p4", _jpeg(5))["verdict"] == "remove"
    ordered = service.admin.post("/v1/posts/p4/removal-order", json=ORDER)
    assert ordered.status_code == 200, ordered.text
    edited = _upload(service.ingest, "p4", _jpeg(9))  # new content: version 2, allowed
    assert (edited["verdict"], edited["version"]) == ("allow", 2)
    first, second = engine.decisions.versions("p4", client="ingest")
    assert first.removal_ordered_at is not None  # kept with the version it was for
    assert second.removal_ordered_at is None
    assert _events(engine, item_key("p4", "ingest", 1)) == ["preserved", "removal_order"]
    assert _events(engine, item_key("p4", "ingest", 2)) == []
    assert engine.missing_evidence() == []
    # An order for the post now is for version 2, preserved from the bytes sent with it.
    again = service.admin.post(
        "/v1/posts/p4/removal-order",
        data={"order": json.dumps(ORDER)},
        files=[("media", ("a.jpg", _jpeg(9), "image/jpeg"))],
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
    assert _events(engine, item_key("p4", "ingest", 2)) == ["preserved", "removal_order"]
    assert _events(engine, item_key("p4", "ingest", 1)) == ["preserved", "removal_order"]
