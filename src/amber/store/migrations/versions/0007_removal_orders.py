"""Decisions record when a removal order last arrived for the post.

A post under a removal order must have its evidence, whatever amber decided about it:
``evidence verify`` and ``amber doctor`` report an ordered post with none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("removal_ordered_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("removal_ordered_at")
