"""API tokens, and the review queue: deadlines on decisions, locks and reviewers' outcomes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("deadline", UTCDateTime, nullable=True))
        batch.add_column(
            sa.Column("threat_to_life", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("review_state", sa.String(20), nullable=False, server_default="none")
        )
        batch.create_index("ix_decisions_review_state", ["review_state"])
    op.create_table(
        "review_locks",
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("post_id", name="pk_review_locks"),
    )
    op.create_table(
        "review_outcomes",
        sa.Column("id", Id, primary_key=True),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("action", sa.String(40), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("bank", sa.String(200), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_outcomes"),
    )
    op.create_index("ix_review_outcomes_post_id", "review_outcomes", ["post_id"])


def downgrade() -> None:
    op.drop_table("review_outcomes")
    op.drop_table("review_locks")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_review_state")
        batch.drop_column("review_state")
        batch.drop_column("threat_to_life")
        batch.drop_column("deadline")
    op.drop_table("api_tokens")
