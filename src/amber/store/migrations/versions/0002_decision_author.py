"""Decisions record the post's author and the post it replies to.

The policy looks at an author's earlier decisions (a harm poll, then the announcement of
its outcome), so both are indexed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("author", sa.String(500), nullable=True))
        batch.add_column(sa.Column("reply_to", sa.String(500), nullable=True))
        batch.create_index("ix_decisions_author", ["author"])


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_author")
        batch.drop_column("reply_to")
        batch.drop_column("author")
