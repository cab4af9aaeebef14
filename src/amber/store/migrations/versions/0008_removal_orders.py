"""Decisions record when a removal order last arrived for the post's version.

A post under a removal order must have its evidence, whatever amber decided about it:
``evidence verify`` and ``amber doctor`` report an ordered post with none. The order is
for the version it found: ``decision_versions`` keeps the time too when new content
supersedes that version (the new version starts without one).

Downgrade drops the columns in place (no rebuild of ``decisions``, so nothing cascades).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("decisions", "decision_versions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("removal_ordered_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): no rebuild of
    # ``decisions``, whose DROP would cascade to ``post_media`` and ``media_signals``.
    for table in reversed(TABLES):
        op.drop_column(table, "removal_ordered_at")
