"""Exchanges: banks kept in step with hash-sharing sources (``amber.exchanges``).

- ``exchanges``: one per source, the bank it fills, its API type and settings, where its
  next fetch resumes (the API's checkpoint) and how its fetches went;
- ``exchange_items``: each upstream record by the API's key, with the bank entry it is,
  its opinion and a digest of its values;
- ``exchange_credentials``: each API type's credentials.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("api", sa.String(100), nullable=False),
        sa.Column(
            "bank_id",
            Id,
            sa.ForeignKey("banks.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("checkpoint", sa.JSON, nullable=True),
        sa.Column("checkpoint_at", UTCDateTime, nullable=True),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sweep_generation", sa.Integer, nullable=True),
        sa.Column("recover_after", Id, nullable=True),
        sa.Column("running_since", UTCDateTime, nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("last_started_at", UTCDateTime, nullable=True),
        sa.Column("last_ended_at", UTCDateTime, nullable=True),
        sa.Column("last_succeeded", sa.Boolean, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_counts", sa.JSON, nullable=True),
        sa.Column("up_to_date", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("fetches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fetched_total", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "exchange_items",
        sa.Column(
            "exchange_id",
            Id,
            sa.ForeignKey("exchanges.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("opinion", sa.String(40), nullable=False),
        sa.Column("entry_id", Id, nullable=True, index=True),
        sa.Column("values_digest", sa.String(64), nullable=False),
        sa.Column("seen", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("exchange_id", "key_digest"),
    )
    op.create_table(
        "exchange_credentials",
        sa.Column("api", sa.String(100), primary_key=True),
        sa.Column("credentials", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exchange_credentials")
    op.drop_table("exchange_items")
    op.drop_table("exchanges")
