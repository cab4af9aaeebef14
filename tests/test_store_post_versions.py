"""Migration 0007: decisions become version 1 of the local client, keeping their media
rows (SQLite rebuilds the table: its children must survive), on SQLite and PostgreSQL;
and back on downgrade, which refuses while two clients hold one post id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from amber import __version__
from amber.decisions import DecisionStore
from amber.identity import DEFAULT_CLIENT
from amber.signals import default_signal_types
from amber.store.db import _alembic_config, _create_engine, connect, database_url
from amber.store.tables import decisions, media_signals, post_media, review_outcomes

WHEN = datetime(2026, 12, 1, 12, tzinfo=UTC)
SHA = "a" * 64


def _at_revision(database: str, revision: str, *, down: bool = False) -> sa.Engine:
    engine = _create_engine(database_url(database))
    config = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # atomic DDL, as amber.store.db.migrate runs it
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    return engine


def _row(post_id: str) -> dict[str, Any]:
    return {
        "post_id": post_id,
        "verdict": "remove",
        "reasons": [{"signal": "sha256", "bank": "known"}],
        "actions": ["remove"],
        "post": f'{{"id": "{post_id}"}}',
        "source": "test",
        "policy": "default@x",
        "amber_version": __version__,
        "first_scanned_at": WHEN,
        "scanned_at": WHEN,
        "scan_count": 2,
        "threat_to_life": False,
        "review_state": "confirmed",
    }


def _type(column: str) -> Any:
    """The type a column needs bound (JSON and UTC times); others as they come."""
    return decisions.c[column].type


def _old(database: str) -> sa.Engine:
    """A database at 0006 holding two decisions with media and a review outcome."""
    old = _at_revision(database, "0006")
    old_decisions = sa.table(
        "decisions", sa.column("id"), *[sa.column(c, _type(c)) for c in _row("x")]
    )
    old_outcomes = sa.table(
        "review_outcomes",
        *[sa.column(c) for c in ("post_id", "reviewer", "outcome", "reason", "decided_at")],
    )
    with old.begin() as conn:
        for post_id in ("p1", "p2"):
            decision = conn.execute(
                old_decisions.insert().values(_row(post_id)).returning(old_decisions.c.id)
            ).scalar_one()
            conn.execute(post_media.insert().values(decision_id=decision, position=0, path="a.jpg"))
            conn.execute(
                media_signals.insert().values(
                    decision=decision,
                    position=0,
                    signal_type="sha256",
                    value=SHA,
                    quality=None,
                    variant="original",
                )
            )
        conn.execute(
            old_outcomes.insert().values(
                post_id="p1", reviewer="r", outcome="confirm", reason="x", decided_at=WHEN
            )
        )
    return old


def test_0007_makes_every_decision_version_1_of_the_local_client(database: str) -> None:
    _old(database).dispose()
    engine = connect(database)  # migrates to the head
    store = DecisionStore(
        engine, policy="default@x", amber_version=__version__, signals=default_signal_types()
    )
    for post_id in ("p1", "p2"):
        kept = store.get(post_id, client=DEFAULT_CLIENT)
        assert (kept.client, kept.version, kept.content_digest) == (DEFAULT_CLIENT, 1, None)
        assert (kept.verdict.value, kept.scan_count, kept.review_state) == (
            "remove",
            2,
            "confirmed",
        )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(post_media)).scalar() == 2
        assert conn.execute(
            sa.select(media_signals.c.value).join(
                decisions, decisions.c.id == media_signals.c.decision
            )
        ).scalars().all() == [SHA, SHA]
        assert conn.execute(sa.select(review_outcomes.c.client)).scalars().all() == [DEFAULT_CLIENT]
        # another client's p1 is now a post of its own
        conn.execute(decisions.insert().values({**_row("p1"), "client": "b"}))
        conn.commit()
    assert store.get("p1", client="b").client == "b"
    engine.dispose()


def test_0007_downgrade_keeps_the_decisions_and_refuses_to_merge_clients(database: str) -> None:
    _old(database).dispose()
    engine = connect(database)
    with engine.begin() as conn:
        conn.execute(decisions.insert().values({**_row("p1"), "client": "b"}))
    engine.dispose()
    with pytest.raises(RuntimeError, match="several clients hold post ids 'p1'"):
        _at_revision(database, "0006", down=True)
    engine = connect(database)
    with engine.begin() as conn:  # the refused downgrade changed nothing
        assert conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar() == 3
        conn.execute(decisions.delete().where(decisions.c.client == "b"))
    engine.dispose()
    old = _at_revision(database, "0006", down=True)
    with old.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("decisions")}
        assert not {"client", "version", "content_digest"} & columns
        rows = conn.execute(sa.text("SELECT post_id, verdict FROM decisions ORDER BY post_id"))
        assert [tuple(r) for r in rows] == [("p1", "remove"), ("p2", "remove")]
        assert conn.execute(sa.text("SELECT COUNT(*) FROM media_signals")).scalar() == 2
        assert conn.execute(sa.text("SELECT COUNT(*) FROM post_media")).scalar() == 2
        assert "decision_versions" not in sa.inspect(conn).get_table_names()
    with old.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        columns = ", ".join(c for c in _row("x") if c not in ("threat_to_life", "review_state"))
        again = f"INSERT INTO decisions ({columns}) SELECT {columns} FROM decisions"
        conn.execute(sa.text(again + " WHERE post_id = 'p1'"))  # one post id, one decision
    old.dispose()
