"""The transparency report (DSA Art. 15/24, TCO Art. 7) on both backends, from real
decisions made by the engine on an injected clock: orders and the time to act (median,
p90), user reports, automated and human decisions, restrictions by category and ground,
appeals and reversals, the accuracy of automated decisions; the HTML page parsed for
its figures and charts; bad dates refused on the command line and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, open_engine
from amber.errors import UserError
from amber.evidence.acts import RemovalOrder
from amber.orders import Orders
from amber.posts import parse_post
from amber.tokens import parse_scopes
from amber.transparency import build_report, median, percentile, render_html

POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "Kill him or let him go?", "options": ["Kill him", "Let him go"]},
}
DAY = datetime(2026, 12, 6, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = DAY - timedelta(hours=2)  # the evening before the day reported

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine:
        yield engine


def _post(engine: Engine, post_id: str, tmp_path: Path, **fields: Any) -> str:
    post = parse_post({"id": post_id, "author": post_id, **fields}, base=tmp_path)
    return engine.decide_post(post).outcome.verdict.value


def _review(engine: Engine, post_id: str, reviewer: str, outcome: str, **kw: Any) -> None:
    engine.review.lock(post_id, reviewer)
    engine.review.decide(post_id, reviewer, outcome, reason="looked at it", **kw)


def _the_day(engine: Engine, clock: Clock, tmp_path: Path) -> None:
    """The day reported, with one restriction the evening before (not counted)."""
    assert _post(engine, "before", tmp_path, **POLL) == "restrict"
    clock.now = DAY + timedelta(hours=8)
    for name in ("poll-1", "poll-2", "poll-3"):
        assert _post(engine, name, tmp_path, **POLL) == "restrict"
    assert _post(engine, "hello", tmp_path, text="a photo of my cat") == "allow"
    engine.report("hello", category="terrorism", text="looks like propaganda", reporter="u1")
    clock.advance(minutes=5)
    _review(engine, "poll-1", "alice", "confirm", action="remove")
    _review(engine, "poll-2", "alice", "reject")
    _review(engine, "hello", "alice", "reject")  # amber did not restrict it: not in the accuracy
    orders = Orders.of(engine)
    for post_id, minutes in (("poll-1", 10), ("poll-3", 50)):
        engine.acts.removal_order(
            post_id, RemovalOrder("R-" + post_id, "Garda", "2021/784"), sent_by="legal"
        )
        order = orders.find(post_id=post_id)[-1]
        clock.advance(minutes=minutes)
        orders.confirm(order.id, by="legal")
    clock.advance(hours=1)
    appeal = engine.appeals.file("poll-1", "it is a film still", filed_by="the-user")
    clock.advance(hours=3)
    engine.appeals.decide(appeal.id, "bob", "reverse", reason="a film still, not real")


def test_the_report_counts_the_day_from_real_decisions(
    clocked: Engine, clock: Clock, tmp_path: Path
) -> None:
    _the_day(clocked, clock, tmp_path)
    report = build_report(clocked, DAY, DAY + timedelta(days=1)).to_json()
    orders = report["orders"]
    assert orders["received"] == 2 and orders["within_one_hour"] == 2
    assert orders["median_seconds_to_act"] == 30 * 60
    assert orders["p90_seconds_to_act"] == 50 * 60
    assert orders["by_authority"] == {"Garda": 2}
    assert report["notices"] == {
        "user_reports": 1,
        "user_reports_by_category": {"terrorism": 1},
    }
    automated = report["decisions"]["automated"]
    assert automated["by_verdict"]["restrict"] == 3 and automated["restricting"] == 3
    assert automated["decided"] >= 4  # the cat post: decided, and decided again on the report
    human = report["decisions"]["human"]
    assert human["by_outcome"] == {"confirm": 1, "reject": 2}
    assert human["appeals_decided"] == 1
    assert report["accuracy"]["confirmed"] == 1 and report["accuracy"]["rejected"] == 1
    assert report["accuracy"]["rate"] == 0.5
    assert report["appeals"]["filed"] == 1 and report["appeals"]["reversed"] == 1
    assert report["appeals"]["upheld"] == 0 and report["appeals"]["open_at_end"] == 0
    restrictions = report["restrictions"]
    assert restrictions["statements"] == sum(restrictions["by_category"].values()) >= 4
    assert "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY" in restrictions["by_category"]
    assert "AUTOMATED_DECISION_FULLY" in restrictions["by_automated_decision"]
    assert set(restrictions["by_ground"]) <= {
        "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "DECISION_GROUND_ILLEGAL_CONTENT",
    }

    evening = build_report(clocked, DAY - timedelta(days=1), DAY).to_json()
    assert evening["decisions"]["automated"]["by_verdict"]["restrict"] == 1
    assert evening["orders"]["received"] == 0 and evening["orders"]["median_seconds_to_act"] is None


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_holds_the_figures_and_charts_and_fetches_nothing(
    clocked: Engine, clock: Clock, tmp_path: Path, amber_cli: Any
) -> None:
    _the_day(clocked, clock, tmp_path)
    page = _Page()
    page.feed(render_html(build_report(clocked, DAY, DAY + timedelta(days=1))))
    text = " ".join(" ".join(page.text).split())
    assert page.tags.count("svg") >= 8 and "script" not in page.tags
    assert page.sources == [] and "http" not in " ".join(page.sources)
    assert "Orders received 2" in text
    assert "Median time to act 30 min 00 s" in text
    assert "90th percentile time to act 50 min 00 s" in text
    assert "Share confirmed 50.0%" in text and "Reversed (post restored) 1" in text
    assert "User reports received 1" in text and "terrorism" in text
    assert "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY" in text

    written = tmp_path / "report.html"
    done = amber_cli(
        "report", "--from", "2026-12-06", "--to", "2026-12-06", "--format", "html", "--out", written
    )
    assert done.returncode == 0, done.stderr
    assert "<svg" in written.read_text(encoding="utf-8")
    as_json = amber_cli("report", "--from", "2026-12-06", "--to", "2026-12-06")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["orders"]["received"] == 2


def test_bad_dates_and_formats_are_refused_clearly(clocked: Engine, amber_cli: Any) -> None:
    for args, message in (
        (("--from", "2026-13-01", "--to", "2026-12-31"), "from '2026-13-01' is not an ISO 8601"),
        (("--from", "2026-12-06", "--to", "last week"), "to 'last week' is not an ISO 8601"),
        (("--from", "2026-12-06", "--to", "2026-12-01"), "is not after from"),
        (("--from", "2026-12-06", "--to", "2026-12-07", "--format", "pdf"), "--format 'pdf'"),
    ):
        done = amber_cli("report", *args)
        assert done.returncode == 2, (args, done.stdout)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
    with pytest.raises(UserError, match="no time zone"):
        build_report(clocked, datetime(2026, 12, 6), DAY)
    token = clocked.tokens.create("legal", parse_scopes("admin"))[1]
    with TestClient(create_app(clocked), headers={"authorization": f"Bearer {token}"}) as api:
        good = api.get("/v1/report", params={"from": "2026-12-06", "to": "2026-12-06"})
        assert good.status_code == 200 and good.json()["orders"]["received"] == 0
        bad = api.get("/v1/report", params={"from": "2026-12-06", "to": "soon"})
        assert bad.status_code == 400 and "to 'soon'" in bad.text
        assert api.get("/v1/report", params={"from": "2026-12-06"}).status_code == 422


def test_median_and_p90_take_values_that_occurred() -> None:
    assert median([]) is None and percentile([], 0.9) is None
    assert median([1, 3]) == 2 and percentile([5], 0.9) == 5
    values = list(range(1, 11))
    assert percentile(values, 0.9) == 9 and percentile(values, 0.5) == 5
    assert percentile(list(range(1, 12)), 0.9) == 10
