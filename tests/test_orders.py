"""Removal orders (TCO Regulation 2021/784) on both backends, against the real engine and
vault with an injected clock: the order record read back (library, API, CLI), the
one-hour clock on the review queue, the removal confirmed with its time (a custody event
and an ``order`` webhook), preservation six months from the removal and its extension
on request, the content provider's notice (Art. 11) and the threat-to-life notice to
the authorities (Art. 14(5)), each recorded once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.evidence.acts import RemovalOrder
from amber.orders import Orders, OrderStatus, Removal
from amber.posts import parse_post
from amber.store.tables import webhook_deliveries
from amber.tokens import parse_scopes
from conftest import CliResult

POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "Kill him or let him go?", "options": ["Kill him", "Let him go"]},
}
ORDER = RemovalOrder(
    reference="TCO-2026-0117", authority="Bundeskriminalamt", legal_basis="2021/784 Art. 3"
)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    """An engine on a fresh database and vault, on the test's clock, with a webhook."""
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine:
        engine.webhooks.add("http://127.0.0.1:9/hook", secret="s" * 32)
        yield engine


def _poll(engine: Engine, post_id: str, tmp_path: Path) -> None:
    decided = engine.decide_post(
        parse_post({"id": post_id, "author": "armed", **POLL}, base=tmp_path)
    )
    assert decided.outcome.verdict.value == "restrict"


def _order_events(engine: Engine) -> list[dict[str, Any]]:
    with engine.db.connect() as conn:
        rows = conn.execute(
            sa.select(webhook_deliveries.c.body)
            .where(webhook_deliveries.c.event == "order")
            .order_by(webhook_deliveries.c.id)
        ).all()
    return [json.loads(r.body) for r in rows]


def test_an_order_is_read_back_with_its_hour_on_the_queue_and_confirmed_once(
    clocked: Engine, clock: Clock, tmp_path: Path
) -> None:
    _poll(clocked, "poll-1", tmp_path)
    clocked.acts.removal_order("poll-1", ORDER, sent_by="platform-legal")
    orders = Orders.of(clocked)
    (order,) = orders.find()
    assert (order.reference, order.authority, order.legal_basis, order.sent_by) == (
        "TCO-2026-0117",
        "Bundeskriminalamt",
        "2021/784 Art. 3",
        "platform-legal",
    )
    assert order.received_at == clock.now and order.deadline == clock.now + timedelta(hours=1)
    assert order.status(clock.now) is OrderStatus.open
    assert orders.get(str(order.id)) == order

    clock.advance(minutes=20)
    (item,) = clocked.review.items()
    assert item.post_id == "poll-1" and item.removal_ordered_at == order.received_at
    assert item.seconds_left == 40 * 60 and not item.overdue
    assert item.to_json()["overdue"] is False

    clock.advance(minutes=50)
    (item,) = clocked.review.items()
    assert item.overdue and item.to_json()["seconds_left"] == -10 * 60
    assert [o.id for o in orders.find(status="overdue")] == [order.id]

    removed_at = order.received_at + timedelta(minutes=42)
    done = orders.confirm(order.id, by="legal", removal="disabled", removed_at=removed_at)
    assert done.removed_at == removed_at and done.removal is Removal.disabled
    assert done.status(clock.now) is OrderStatus.complied
    assert done.time_to_act == timedelta(minutes=42)
    assert done.retain_until is not None
    assert done.retain_until >= removed_at + timedelta(days=183)
    assert orders.find(status="complied") == [done]
    with pytest.raises(ConflictError, match="confirmed already"):
        orders.confirm(order.id, by="legal")
    steps = [e["order"].get("step") for e in _order_events(clocked)]
    assert steps == [None, "complied"]  # the order as registered, then its confirmation
    complied = _order_events(clocked)[-1]
    assert complied["post_id"] == "poll-1" and complied["order"]["removal"] == "disabled"
    assert complied["order"]["removed_at"] == removed_at.isoformat()


def test_a_late_removal_and_bad_confirmations_are_told_apart(
    clocked: Engine, clock: Clock, tmp_path: Path
) -> None:
    _poll(clocked, "poll-1", tmp_path)
    clocked.acts.removal_order("poll-1", ORDER, sent_by="platform-legal")
    orders = Orders.of(clocked)
    (order,) = orders.find()
    with pytest.raises(UserError, match="before order"):
        orders.confirm(order.id, by="legal", removed_at=order.received_at - timedelta(seconds=1))
    with pytest.raises(UserError, match="in the future"):
        orders.confirm(order.id, by="legal", removed_at=clock.now + timedelta(minutes=1))
    with pytest.raises(UserError, match="removal 'deleted' is unknown"):
        orders.confirm(order.id, by="legal", removal="deleted")
    with pytest.raises(NotFoundError, match="is a number"):
        orders.get("abc")
    with pytest.raises(NotFoundError, match="no removal order 999"):
        orders.get(999)
    clock.advance(hours=2)
    done = orders.confirm(order.id, by="legal")
    assert done.status(clock.now) is OrderStatus.late
    assert done.time_to_act == timedelta(hours=2)


def test_preservation_is_extended_on_request_and_each_notice_is_recorded_once(
    clocked: Engine, clock: Clock, tmp_path: Path
) -> None:
    _poll(clocked, "poll-1", tmp_path)
    clocked.acts.removal_order("poll-1", ORDER, sent_by="platform-legal")
    orders = Orders.of(clocked)
    (order,) = orders.find()
    with pytest.raises(ConflictError, match="confirm it first"):
        orders.notify_provider(order.id, by="legal")
    clock.advance(minutes=30)
    confirmed = orders.confirm(order.id, by="legal")
    assert confirmed.retain_until is not None

    later = confirmed.retain_until + timedelta(days=180)
    extended = orders.extend(order.id, later, reason="court of Karlsruhe, 3 StE 1/26", by="legal")
    assert extended.retain_until == later
    assert "court of Karlsruhe" in extended.extensions[-1]["reason"]
    assert clocked.open_vault().item("poll-1").retain_until == later
    with pytest.raises(ConflictError, match="kept until"):
        orders.extend(order.id, later - timedelta(days=1), reason="again", by="legal")
    with pytest.raises(UserError, match="not in the future"):
        orders.extend(order.id, clock.now - timedelta(days=1), reason="old", by="legal")

    notified = orders.notify_provider(order.id, by="legal", author="armed")
    notice = notified.provider_notice
    assert notice is not None
    text = notice["text"]
    for part in ("Bundeskriminalamt", "TCO-2026-0117", "Article 10", "Article 9", "copy"):
        assert part in text
    with pytest.raises(ConflictError, match="notified of order"):
        orders.notify_provider(order.id, by="legal")

    with pytest.raises(UserError, match="name the authority"):
        orders.notify_authorities(order.id, authority=" ", by="legal")
    warned = orders.notify_authorities(
        order.id, authority="Europol EU IRU", by="legal", text="a hostage's life"
    )
    assert warned.authorities_notice is not None
    assert warned.authorities_notice["authority"] == "Europol EU IRU"
    # A second order for the same post does not warn the authorities twice.
    clocked.acts.removal_order("poll-1", ORDER, sent_by="platform-legal")
    second = orders.find()[-1]
    assert second.id != order.id and second.authorities_notice is not None
    with pytest.raises(ConflictError, match="recorded once"):
        orders.notify_authorities(second.id, authority="another", by="legal")
    steps = [e["order"].get("step") for e in _order_events(clocked)]
    assert steps == [None, "complied", "provider_notice", "authorities_notice", None]
    assert _order_events(clocked)[2]["order"]["provider_notice"]["text"] == text


def test_orders_over_http(clocked: Engine, clock: Clock, tmp_path: Path) -> None:
    _poll(clocked, "poll-1", tmp_path)
    app = create_app(clocked)
    tokens = {
        n: clocked.tokens.create(n, parse_scopes(s))[1]
        for n, s in (("legal", "admin"), ("bob", "review"))
    }
    admin = TestClient(app, headers={"authorization": f"Bearer {tokens['legal']}"})
    reviewer = TestClient(app, headers={"authorization": f"Bearer {tokens['bob']}"})
    with admin, reviewer:
        registered = admin.post(
            "/v1/posts/poll-1/removal-order",
            json={"reference": "R-1", "authority": "Garda", "legal_basis": "2021/784"},
        )
        assert registered.status_code == 200, registered.text
        listed = admin.get("/v1/orders")
        assert listed.status_code == 200
        (order,) = listed.json()
        assert order["reference"] == "R-1" and order["status"] == "open"
        assert order["seconds_left"] == 3600 and order["sent_by"] == "legal"
        assert reviewer.get("/v1/orders").status_code == 403
        assert admin.get(f"/v1/orders/{order['id']}").json() == order
        missing = admin.get("/v1/orders/nope")
        assert missing.status_code == 404 and "nope" in missing.text
        bad = admin.get("/v1/orders", params={"status": "done"})
        assert bad.status_code == 400 and "status 'done'" in bad.text
        queue = reviewer.get("/v1/review/queue").json()
        assert queue[0]["removal_ordered_at"] == order["received_at"]
        assert queue[0]["seconds_left"] == 3600 and queue[0]["overdue"] is False

        url = f"/v1/orders/{order['id']}/removed"
        wrong = admin.post(url, json={"removed_at": "yesterday"})
        assert wrong.status_code == 400 and "removed_at 'yesterday'" in wrong.text
        assert admin.post(url, json={"removal": "burnt"}).status_code == 422
        clock.advance(minutes=12)
        done = admin.post(url, json={})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "complied" and done.json()["seconds_to_act"] == 720
        assert admin.post(url, json={}).status_code == 409
        kept = admin.post(
            f"/v1/orders/{order['id']}/preservation",
            json={"until": "2028-01-31", "reason": "prosecutor's request"},
        )
        assert kept.status_code == 200 and kept.json()["retain_until"].startswith("2028-02-01")
        notice = admin.post(f"/v1/orders/{order['id']}/provider-notice", json={})
        assert notice.status_code == 200 and "Garda" in notice.json()["provider_notice"]["text"]
        warned = admin.post(
            f"/v1/orders/{order['id']}/authorities-notice", json={"authority": "Garda"}
        )
        assert warned.status_code == 200
        again = admin.post(
            f"/v1/orders/{order['id']}/authorities-notice", json={"authority": "Garda"}
        )
        assert again.status_code == 409 and "once" in again.text


def test_orders_on_the_command_line(engine: Engine, amber_cli: Any, tmp_path: Path) -> None:
    _poll(engine, "poll-1", tmp_path)
    engine.acts.removal_order("poll-1", ORDER, sent_by="platform-legal")
    listed: CliResult = amber_cli("order", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Bundeskriminalamt" in listed.stdout and "min left" in listed.stdout
    (line,) = amber_cli("order", "list", "--format", "jsonl").stdout.splitlines()
    order = json.loads(line)
    shown = amber_cli("order", "show", str(order["id"]))
    assert json.loads(shown.stdout)["reference"] == "TCO-2026-0117"
    done = amber_cli("order", "confirm", str(order["id"]), "--by", "legal")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "complied"
    again = amber_cli("order", "confirm", str(order["id"]))
    assert again.returncode == 2 and "confirmed already" in again.stderr
    assert "Traceback" not in again.stderr
    for args, message in (
        (("order", "show", "x1"), "is a number"),
        (("order", "list", "--status", "done"), "status 'done'"),
        (("order", "list", "--from", "someday"), "--from 'someday'"),
        (
            ("order", "extend", str(order["id"]), "--until", "2020-01-01", "--reason", "r"),
            "not in the future",
        ),
    ):
        failed = amber_cli(*args)
        assert failed.returncode == 2, (args, failed.stdout, failed.stderr)
        assert message in failed.stderr and "Traceback" not in failed.stderr
