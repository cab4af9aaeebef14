"""Migration 0006: a post's media values move from post_media's fixed columns to
media_signals rows, on SQLite and PostgreSQL, keeping the data; and back on downgrade."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command

from amber import __version__
from amber.decisions import DecisionStore
from amber.review.queue import ReviewQueue
from amber.signals import SignalValue, default_signal_types
from amber.store.db import _alembic_config, _create_engine, connect, database_url
from amber.store.tables import decisions, media_signals, post_media

WHEN = datetime(2026, 12, 1, 12, tzinfo=UTC)
PDQ = "2cd21f4aff2bb1bb119bcf916c84c06e466d6f653505c454b7d43bce980d3113"
SHA = "a" * 64
MD5 = "b" * 32


def _at_revision(database: str, revision: str, *, down: bool = False) -> sa.Engine:
    engine = _create_engine(database_url(database))
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    return engine


def _old_post_media() -> sa.TableClause:
    return sa.table(
        "post_media",
        sa.column("decision_id", sa.Integer),
        sa.column("position", sa.Integer),
        sa.column("path", sa.Text),
        sa.column("sha256", sa.String),
        sa.column("md5", sa.String),
        sa.column("pdq", sa.String),
        sa.column("pdq_quality", sa.Integer),
        sa.column("width", sa.Integer),
        sa.column("height", sa.Integer),
    )


def _decision(post_id: str, *, threat: bool) -> dict[str, Any]:
    return {
        "post_id": post_id,
        "verdict": "restrict",
        "reasons": [{"signal": "harm_poll"}],
        "actions": ["escalate:threat_to_life"] if threat else [],
        "post": "{}",
        "source": "test",
        "policy": "default@x",
        "amber_version": __version__,
        "first_scanned_at": WHEN,
        "scanned_at": WHEN,
        "scan_count": 1,
        "threat_to_life": threat,
        "review_state": "pending",
    }


def test_0006_moves_media_hashes_into_media_signals_and_keeps_them(database: str) -> None:
    old = _at_revision(database, "0005")
    media = _old_post_media()
    with old.begin() as conn:
        first = conn.execute(
            decisions.insert().values(_decision("p1", threat=True)).returning(decisions.c.id)
        ).scalar_one()
        second = conn.execute(
            decisions.insert().values(_decision("p2", threat=False)).returning(decisions.c.id)
        ).scalar_one()
        conn.execute(
            media.insert(),
            [
                {"decision_id": first, "position": 0, "path": "a.jpg", "sha256": SHA,
                 "md5": MD5, "pdq": PDQ, "pdq_quality": 87, "width": 640, "height": 480},
                {"decision_id": first, "position": 1, "path": "b.gif", "sha256": "c" * 64,
                 "md5": "d" * 32, "pdq": None, "pdq_quality": None, "width": None,
                 "height": None},
                {"decision_id": second, "position": 0, "path": "c.png", "sha256": "e" * 64,
                 "md5": "f" * 32, "pdq": "0" * 64, "pdq_quality": 12, "width": 8, "height": 8},
            ],
        )  # fmt: skip
    old.dispose()

    engine = connect(database)  # migrates to the newest revision
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                media_signals.c.decision,
                media_signals.c.position,
                media_signals.c.signal_type,
                media_signals.c.value,
                media_signals.c.quality,
                media_signals.c.variant,
            )
        ).all()
        kept = conn.execute(
            sa.select(post_media.c.decision_id, post_media.c.position, post_media.c.path)
        ).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        [
            (first, 0, "sha256", SHA, None, "original"),
            (first, 0, "md5", MD5, None, "original"),
            (first, 0, "pdq", PDQ, 87, "original"),
            (first, 1, "sha256", "c" * 64, None, "original"),
            (first, 1, "md5", "d" * 32, None, "original"),
            (second, 0, "sha256", "e" * 64, None, "original"),
            (second, 0, "md5", "f" * 32, None, "original"),
            (second, 0, "pdq", "0" * 64, 12, "original"),
        ]
    )
    assert sorted(tuple(r) for r in kept) == [
        (first, 0, "a.jpg"),
        (first, 1, "b.gif"),
        (second, 0, "c.png"),
    ]
    columns = {c["name"] for c in sa.inspect(engine).get_columns("post_media")}
    assert columns == {"id", "decision_id", "position", "path", "width", "height"}

    # The readers find the moved values: the review page's hashes and "the same photo".
    review = ReviewQueue(engine, clock=lambda: WHEN, add_to_bank=lambda post, bank: None)  # type: ignore[arg-type,return-value]
    [a, b] = review.media_hashes("p1")
    assert (a["path"], a["sha256"], a["pdq"], a["pdq_quality"]) == ("a.jpg", SHA, PDQ, 87)
    assert "pdq" not in b and b["md5"] == "d" * 32
    store = DecisionStore(
        engine, policy="p", amber_version=__version__, signals=default_signal_types()
    )
    near = f"{int(PDQ, 16) ^ 0b111:064x}"  # 3 bits away
    [found] = store.earlier(
        post_id="new", author=None, reply_to=None, media=[SignalValue("pdq", near, 90)]
    )
    assert (found.post_id, found.media_distance) == ("p1", 3)

    # Deleting a decision deletes its media values.
    with engine.begin() as conn:
        conn.execute(decisions.delete().where(decisions.c.id == second))
        left = conn.execute(sa.select(sa.func.count()).select_from(media_signals)).scalar()
    assert left == 5
    engine.dispose()


def test_0006_downgrade_puts_the_columns_back_with_their_values(database: str) -> None:
    engine = connect(database)
    with engine.begin() as conn:
        decision = conn.execute(
            decisions.insert().values(_decision("p1", threat=False)).returning(decisions.c.id)
        ).scalar_one()
        conn.execute(
            post_media.insert().values(
                decision_id=decision, position=0, path="a.jpg", width=640, height=480
            )
        )
        conn.execute(
            media_signals.insert(),
            [
                {"decision": decision, "position": 0, "signal_type": t, "value": v,
                 "quality": q, "variant": "original"}
                for t, v, q in (("sha256", SHA, None), ("md5", MD5, None), ("pdq", PDQ, 70))
            ],
        )  # fmt: skip
    engine.dispose()
    old = _at_revision(database, "0005", down=True)
    with old.connect() as conn:
        row = conn.execute(sa.select(_old_post_media())).one()
        tables = sa.inspect(conn).get_table_names()
    old.dispose()
    assert (row.path, row.sha256, row.md5, row.pdq, row.pdq_quality) == (
        "a.jpg",
        SHA,
        MD5,
        PDQ,
        70,
    )
    assert "media_signals" not in tables
