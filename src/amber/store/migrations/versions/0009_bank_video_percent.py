"""Banks gain ``video_percent``: the share (percent) of a banked video's frames a posted
video must cover to match it as a whole (vPDQ's compared-match share), per bank; 80 for
existing banks, vPDQ's example operating point. A segment played in order matches
whatever the share.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.add_column(
            sa.Column("video_percent", sa.Integer, nullable=False, server_default="80")
        )


def downgrade() -> None:
    op.drop_column("banks", "video_percent")
