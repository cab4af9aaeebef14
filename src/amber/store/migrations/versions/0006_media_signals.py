"""Media signal values in rows of their own: every signal type stored alike.

``post_media`` held a fixed column per built-in hash (``sha256``, ``md5``, ``pdq`` with
``pdq_quality``), so a plug-in's values had nowhere to go. Each value is now a row of
``media_signals(decision, position, signal_type, value, quality, variant)``; the existing
values move there and those columns go. ``post_media`` keeps position, path and size.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The columns that move, each with its signal type and quality column.
MOVED = (("sha256", None), ("md5", None), ("pdq", "pdq_quality"))

# The tables as this migration sees them (not as ``tables.py`` has them later).
_post_media = sa.table(
    "post_media",
    sa.column("decision_id", Id),
    sa.column("position", sa.Integer),
    sa.column("sha256", sa.String),
    sa.column("md5", sa.String),
    sa.column("pdq", sa.String),
    sa.column("pdq_quality", sa.Integer),
)
_media_signals = sa.table(
    "media_signals",
    sa.column("decision", Id),
    sa.column("position", sa.Integer),
    sa.column("signal_type", sa.String),
    sa.column("value", sa.String),
    sa.column("quality", sa.Integer),
    sa.column("variant", sa.String),
)


def upgrade() -> None:
    op.create_table(
        "media_signals",
        sa.Column("decision", Id, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("signal_type", sa.String(40), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("quality", sa.Integer, nullable=True),
        sa.Column("variant", sa.String(60), nullable=False),
        sa.PrimaryKeyConstraint(
            "decision", "position", "signal_type", "variant", "value", name="pk_media_signals"
        ),
        sa.ForeignKeyConstraint(
            ["decision"],
            ["decisions.id"],
            name="fk_media_signals_decision_decisions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_media_signals_signal_type_value", "media_signals", ["signal_type", "value"])
    for column, quality in MOVED:
        source = _post_media.c[column]
        op.execute(
            _media_signals.insert().from_select(
                ["decision", "position", "signal_type", "value", "quality", "variant"],
                sa.select(
                    _post_media.c.decision_id,
                    _post_media.c.position,
                    sa.literal(column, sa.String),
                    source,
                    _post_media.c[quality] if quality else sa.null(),
                    sa.literal("original", sa.String),
                ).where(source.is_not(None)),
            )
        )
    op.drop_index("ix_post_media_sha256", table_name="post_media")
    with op.batch_alter_table("post_media") as batch:
        for column, quality in MOVED:
            batch.drop_column(column)
            if quality:
                batch.drop_column(quality)


def downgrade() -> None:
    with op.batch_alter_table("post_media") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("md5", sa.String(32), nullable=True))
        batch.add_column(sa.Column("pdq", sa.String(64), nullable=True))
        batch.add_column(sa.Column("pdq_quality", sa.Integer, nullable=True))
    for column, quality in MOVED:
        values: dict[str, sa.ColumnElement[object]] = {
            column: _original(column, _media_signals.c.value)
        }
        if quality:
            values[quality] = _original(column, _media_signals.c.quality)
        op.execute(_post_media.update().values(**values))
    op.create_index("ix_post_media_sha256", "post_media", ["sha256"])
    op.drop_index("ix_media_signals_signal_type_value", table_name="media_signals")
    op.drop_table("media_signals")


def _original(signal_type: str, column: sa.ColumnClause[object]) -> sa.ColumnElement[object]:
    """The first stored value's ``column`` of ``signal_type`` for a ``post_media`` row."""
    return (
        sa.select(column)
        .where(
            _media_signals.c.decision == _post_media.c.decision_id,
            _media_signals.c.position == _post_media.c.position,
            _media_signals.c.signal_type == signal_type,
            _media_signals.c.variant == "original",
        )
        .order_by(_media_signals.c.value)
        .limit(1)
        .scalar_subquery()
    )
