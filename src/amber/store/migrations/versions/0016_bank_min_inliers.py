"""Banks gain ``min_inliers``: how many keypoint pairs must agree with one homography
for a local-feature (ORB) match to the bank's entries; 16 for existing banks, the
signal type's default (``amber.signals.local.OrbSignal.MIN_INLIERS``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.add_column(sa.Column("min_inliers", sa.Integer, nullable=False, server_default="16"))


def downgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("min_inliers")
