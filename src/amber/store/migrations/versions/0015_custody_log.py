"""The custody log in the database (issue 16, point 3): appends without a shared folder.

- ``custody_logs``: one row per vault log, its origin and size (the gapless counter);
- ``custody_records``: each record, by leaf index, with its canonical bytes and leaf hash;
- ``custody_checkpoints``: the signed checkpoints.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custody_logs",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "custody_records",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("appended_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "custody_checkpoints",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("custody_checkpoints")
    op.drop_table("custody_records")
    op.drop_table("custody_logs")
