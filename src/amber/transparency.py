"""The transparency report (EU DSA Art. 15 and 24, TCO Regulation 2021/784 Art. 7) of a
time range: what amber and the people using it did, counted from what is stored.

- orders: the removal orders received (``amber.orders``), how many were complied with
  within the hour, and the time to act (receipt to removal confirmed: median, p90);
- notices: the user reports received (``amber.reports``), by category; the orders are
  the authorities' notices;
- decisions: amber's automated decisions (each decided version of a post, by verdict)
  and people's (reviewers' outcomes, appeals decided);
- restrictions: the statements of reasons decided in the range (``amber.statements``),
  by category, ground and automation, as they are submitted to the DSA database;
- appeals: filed, decided, upheld, reversed, and the time to decide;
- accuracy: amber's automated restrictions that a reviewer confirmed or rejected.

Everything is counted by when it happened: a decision by when amber first decided that
version, an outcome by when it was recorded, an order by when it was received.
``build_report`` makes a ``Report`` (``to_json``); ``render_html`` makes one
self-contained HTML page of it with inline SVG charts (no script, no network).
"""

from __future__ import annotations

import html
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber import __version__
from amber.errors import UserError
from amber.orders import Orders, OrderStatus
from amber.reports import ReportStore
from amber.statements import Statements
from amber.store.tables import appeals, decision_versions, decisions, review_outcomes

if TYPE_CHECKING:
    from amber.engine import Engine

#: The verdicts by which amber acted on its own (restricted or removed the post): a
#: reviewer's confirmation or rejection of one measures amber's accuracy. A ``review``
#: verdict acted on nothing (a person decides), so it is not counted.
FLAGGED = ("restrict", "remove")


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` (0 to 1) percentile of ``values`` by nearest rank (a value that
    occurred), ``None`` for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-round(share * 1000) * len(ordered) // 1000)  # ceil(share * n), exactly
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    """The median of ``values``, ``None`` for none."""
    return None if not values else float(statistics.median(values))


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of one range; each section a JSON object (``to_json``)."""

    start: datetime
    end: datetime
    generated_at: datetime
    orders: Mapping[str, Any]
    notices: Mapping[str, Any]
    decisions: Mapping[str, Any]
    restrictions: Mapping[str, Any]
    appeals: Mapping[str, Any]
    accuracy: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The report as ``amber report --format json`` and ``GET /v1/report`` write it."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "amber_version": __version__,
            "orders": dict(self.orders),
            "notices": dict(self.notices),
            "decisions": dict(self.decisions),
            "restrictions": dict(self.restrictions),
            "appeals": dict(self.appeals),
            "accuracy": dict(self.accuracy),
        }


def build_report(engine: Engine, start: datetime, end: datetime) -> Report:
    """The report of what happened at or after ``start`` and before ``end``, on
    ``engine``'s database and vault. Raises ``UserError`` for a time without a zone or an
    empty range."""
    for name, moment in (("from", start), ("to", end)):
        if moment.utcoffset() is None:
            raise UserError(f"{name} {moment.isoformat()!r} has no time zone; add one (Z)")
    if end <= start:
        raise UserError(f"to {end.isoformat()} is not after from {start.isoformat()}")
    now = engine.clock()
    with engine.db.connect() as conn:
        automated = _automated(conn, start, end)
        outcomes = _outcomes(conn, start, end)
        appealed = _appeals(conn, start, end)
        accuracy = _accuracy(conn, start, end)
    reports = ReportStore(engine.db).counts(since=start, until=end)
    return Report(
        start=start,
        end=end,
        generated_at=now,
        orders=_orders(Orders.of(engine), start, end, now),
        notices={
            "user_reports": sum(reports.values()),
            "user_reports_by_category": reports,
        },
        decisions={
            "automated": automated,
            "human": {
                "review_outcomes": sum(outcomes.values()),
                "by_outcome": outcomes,
                "appeals_decided": appealed["decided"],
            },
        },
        restrictions=_restrictions(Statements.of(engine), start, end),
        appeals=appealed,
        accuracy=accuracy,
    )


def _orders(orders: Orders, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    found = orders.find(since=start, until=end)
    status = Counter(o.status(now).value for o in found)
    acted = [t.total_seconds() for o in found if (t := o.time_to_act) is not None]
    return {
        "received": len(found),
        "by_status": {s.value: status.get(s.value, 0) for s in OrderStatus},
        "within_one_hour": status.get(OrderStatus.complied.value, 0),
        "median_seconds_to_act": median(acted),
        "p90_seconds_to_act": percentile(acted, 0.9),
        "by_authority": dict(sorted(Counter(o.authority or "(not named)" for o in found).items())),
        "provider_notices": sum(1 for o in found if o.provider_notice is not None),
        "authorities_notices": sum(1 for o in found if o.authorities_notice is not None),
    }


def _automated(conn: sa.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    verdicts: Counter[str] = Counter()
    for table in (decisions, decision_versions):
        rows = conn.execute(
            sa.select(table.c.verdict, sa.func.count())
            .where(table.c.first_scanned_at >= start, table.c.first_scanned_at < end)
            .group_by(table.c.verdict)
        )
        for verdict, count in rows:
            verdicts[str(verdict)] += int(count)
    order = ("allow", "review", "restrict", "remove")
    return {
        "decided": sum(verdicts.values()),
        "by_verdict": {v: verdicts.get(v, 0) for v in order},
        "restricting": verdicts.get("restrict", 0) + verdicts.get("remove", 0),
    }


def _outcomes(conn: sa.Connection, start: datetime, end: datetime) -> dict[str, int]:
    rows = conn.execute(
        sa.select(review_outcomes.c.outcome, sa.func.count())
        .where(review_outcomes.c.decided_at >= start, review_outcomes.c.decided_at < end)
        .group_by(review_outcomes.c.outcome)
    )
    return dict(sorted((str(o), int(n)) for o, n in rows))


def _appeals(conn: sa.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    filed = conn.execute(
        sa.select(sa.func.count()).where(appeals.c.filed_at >= start, appeals.c.filed_at < end)
    ).scalar_one()
    decided = conn.execute(
        sa.select(appeals.c.status, appeals.c.filed_at, appeals.c.decided_at).where(
            appeals.c.decided_at >= start, appeals.c.decided_at < end
        )
    ).all()
    still_open = conn.execute(
        sa.select(sa.func.count()).where(appeals.c.status == "open", appeals.c.filed_at < end)
    ).scalar_one()
    days = [(r.decided_at - r.filed_at).total_seconds() / 86400 for r in decided]
    return {
        "filed": int(filed),
        "decided": len(decided),
        "upheld": sum(1 for r in decided if r.status == "upheld"),
        "reversed": sum(1 for r in decided if r.status == "reversed"),
        "open_at_end": int(still_open),
        "median_days_to_decide": median(days),
    }


def _accuracy(conn: sa.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Reviewers' confirmations and rejections of amber's restrictions in the range,
    each post counted once by its latest such outcome (a reopened and changed outcome
    counts as changed)."""
    rows = conn.execute(
        sa.select(
            review_outcomes.c.client,
            review_outcomes.c.post_id,
            review_outcomes.c.outcome,
            decisions.c.verdict,
        )
        .join(
            decisions,
            sa.and_(
                decisions.c.client == review_outcomes.c.client,
                decisions.c.post_id == review_outcomes.c.post_id,
            ),
        )
        .where(
            review_outcomes.c.outcome.in_(("confirm", "reject")),
            review_outcomes.c.decided_at >= start,
            review_outcomes.c.decided_at < end,
            decisions.c.verdict.in_(FLAGGED),
        )
        .order_by(review_outcomes.c.decided_at, review_outcomes.c.id)
    ).all()
    latest = {(r.client, r.post_id): (r.outcome, r.verdict) for r in rows}
    by_verdict: dict[str, dict[str, int]] = {}
    for outcome, verdict in latest.values():
        counts = by_verdict.setdefault(str(verdict), {"confirmed": 0, "rejected": 0})
        counts["confirmed" if outcome == "confirm" else "rejected"] += 1
    confirmed = sum(c["confirmed"] for c in by_verdict.values())
    rejected = sum(c["rejected"] for c in by_verdict.values())
    return {
        "reviewed": confirmed + rejected,
        "confirmed": confirmed,
        "rejected": rejected,
        "rate": None if not confirmed + rejected else confirmed / (confirmed + rejected),
        "by_verdict": dict(sorted(by_verdict.items())),
    }


def _restrictions(statements: Statements, start: datetime, end: datetime) -> dict[str, Any]:
    found = [s.fields for s in statements.between(start, end)]

    def count(name: str) -> dict[str, int]:
        return dict(sorted(Counter(str(f.get(name)) for f in found).items()))

    return {
        "statements": len(found),
        "by_category": count("category"),
        "by_ground": count("decision_ground"),
        "by_automated_decision": count("automated_decision"),
        "by_source": count("source_type"),
    }


# -- HTML ------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even){background:#f6f6f6}
svg text{font:12px system-ui,sans-serif}.muted{color:#666}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def bar_chart(title: str, values: Mapping[str, float | int]) -> str:
    """An inline SVG horizontal bar chart of ``values`` (label to number), titled."""
    rows = list(values.items())
    width, label_w, bar_h = 640, 280, 22
    height = 30 + bar_h * max(len(rows), 1)
    top = max((float(v) for _, v in rows), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{_esc(title)}</title>',
        f'<text x="0" y="16" font-weight="bold">{_esc(title)}</text>',
    ]
    if not rows:
        parts.append('<text x="0" y="44" fill="#666">none in this period</text>')
    for i, (label, value) in enumerate(rows):
        y = 26 + i * bar_h
        length = (width - label_w - 70) * float(value) / top
        parts.append(
            f'<text x="0" y="{y + 15}">{_esc(label[:44])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{bar_h - 6}" '
            f'fill="#c0392b"/><text x="{label_w + length + 6:.1f}" y="{y + 15}">'
            f"{_esc(_number(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(
        f'<tr><th scope="row">{_esc(k)}</th><td class="n">{_esc(_number(v))}</td></tr>'
        for k, v in rows
    )
    return f"<table>{body}</table>"


def render_html(report: Report) -> str:
    """``report`` as one self-contained HTML page: its figures in tables and inline SVG
    charts, no script, nothing fetched."""
    r = report.to_json()
    orders, notices, dec = r["orders"], r["notices"], r["decisions"]
    restr, app, acc = r["restrictions"], r["appeals"], r["accuracy"]
    rate = "–" if acc["rate"] is None else f"{acc['rate']:.1%}"
    period = f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    sections = [
        "<h2>Removal orders (TCO Art. 3, 7)</h2>",
        _table(
            [
                ("Orders received", orders["received"]),
                ("Removed or disabled within one hour", orders["within_one_hour"]),
                ("Removed or disabled after the hour", orders["by_status"]["late"]),
                ("Not yet acted on, overdue", orders["by_status"]["overdue"]),
                ("Median time to act", _duration(orders["median_seconds_to_act"])),
                ("90th percentile time to act", _duration(orders["p90_seconds_to_act"])),
                ("Content providers notified (Art. 11)", orders["provider_notices"]),
                (
                    "Threats to life notified to authorities (Art. 14(5))",
                    orders["authorities_notices"],
                ),
            ]
        ),
        bar_chart("Orders by issuing authority", orders["by_authority"]),
        "<h2>Notices and user reports (DSA Art. 15(1)(b), 16)</h2>",
        _table([("User reports received", notices["user_reports"])]),
        bar_chart("User reports by category", notices["user_reports_by_category"]),
        "<h2>Automated and human decisions (DSA Art. 15(1)(c), (e))</h2>",
        _table(
            [
                ("Posts decided by amber (automated)", dec["automated"]["decided"]),
                ("of which restricted or removed", dec["automated"]["restricting"]),
                ("Review outcomes recorded by people", dec["human"]["review_outcomes"]),
                ("Appeals decided by people", dec["human"]["appeals_decided"]),
            ]
        ),
        bar_chart("Automated decisions by verdict", dec["automated"]["by_verdict"]),
        bar_chart("Human review outcomes", dec["human"]["by_outcome"]),
        "<h2>Restrictions by category and ground (DSA Art. 15(1)(c), 17)</h2>",
        _table([("Statements of reasons", restr["statements"])]),
        bar_chart("Restrictions by category", restr["by_category"]),
        bar_chart("Restrictions by ground", restr["by_ground"]),
        bar_chart("Restrictions by automation", restr["by_automated_decision"]),
        "<h2>Appeals and reversals (DSA Art. 15(1)(d), 20; TCO Art. 10)</h2>",
        _table(
            [
                ("Appeals filed", app["filed"]),
                ("Appeals decided", app["decided"]),
                ("Upheld (restriction stands)", app["upheld"]),
                ("Reversed (post restored)", app["reversed"]),
                ("Open at the end of the period", app["open_at_end"]),
                ("Median days to decide", app["median_days_to_decide"]),
            ]
        ),
        bar_chart(
            "Appeals decided",
            {"upheld": app["upheld"], "reversed": app["reversed"]},
        ),
        "<h2>Accuracy of automated decisions (DSA Art. 15(1)(e))</h2>",
        _table(
            [
                ("Automated restrictions reviewed", acc["reviewed"]),
                ("Confirmed by a reviewer", acc["confirmed"]),
                ("Rejected by a reviewer", acc["rejected"]),
                ("Share confirmed", rate),
            ]
        ),
        bar_chart(
            "Reviewed automated decisions",
            {"confirmed": acc["confirmed"], "rejected": acc["rejected"]},
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Transparency report {_esc(period)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Transparency report</h1><p>{_esc(period)}. "
        f'<span class="muted">Generated {_esc(r["generated_at"])} by amber '
        f"{_esc(__version__)}.</span></p>" + "\n".join(sections) + "</body></html>\n"
    )
