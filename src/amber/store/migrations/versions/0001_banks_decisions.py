"""Banks, bank entries with their signals, decisions and the media of each post.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_banks"),
        sa.UniqueConstraint("name", name="uq_banks_name"),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bank_entries"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_bank_entries_bank_id_banks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_bank_entries_bank_id", "bank_entries", ["bank_id"])
    op.create_table(
        "entry_signals",
        sa.Column("id", Id, primary_key=True),
        sa.Column("entry_id", Id, nullable=False),
        sa.Column("signal_type", sa.String(40), nullable=False),
        sa.Column("signal_version", sa.Integer, nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("quality", sa.Integer, nullable=True),
        sa.Column("variant", sa.String(60), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entry_signals"),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["bank_entries.id"],
            name="fk_entry_signals_entry_id_bank_entries",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_entry_signals_entry_id", "entry_signals", ["entry_id"])
    op.create_index("ix_entry_signals_type_value", "entry_signals", ["signal_type", "value"])
    op.create_table(
        "decisions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("post", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("amber_version", sa.String(40), nullable=False),
        sa.Column("first_scanned_at", UTCDateTime, nullable=False),
        sa.Column("scanned_at", UTCDateTime, nullable=False),
        sa.Column("scan_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint("post_id", name="uq_decisions_post_id"),
    )
    op.create_table(
        "post_media",
        sa.Column("id", Id, primary_key=True),
        sa.Column("decision_id", Id, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("pdq", sa.String(64), nullable=True),
        sa.Column("pdq_quality", sa.Integer, nullable=True),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_post_media"),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name="fk_post_media_decision_id_decisions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("decision_id", "position", name="uq_post_media_decision_id_position"),
    )
    op.create_index("ix_post_media_sha256", "post_media", ["sha256"])


def downgrade() -> None:
    op.drop_table("post_media")
    op.drop_table("decisions")
    op.drop_table("entry_signals")
    op.drop_table("bank_entries")
    op.drop_table("banks")
