"""Appeals (EU DSA Art. 20) and the review history (issue 15, points 7 and 7b).

- ``appeals``: a user's complaint against a restriction of their post, what it appeals
  (the statement of reasons in force and when that decision was taken), its target date,
  and its outcome; at most one open per post (a partial unique index);
- ``review_outcomes`` gains ``entries`` (the bank entries a confirmation added, or an
  ``unbank`` deleted) and ``refers_to`` (the outcome a ``reopen`` reopened): the review
  history keeps every step, nothing is overwritten.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_outcomes") as batch:
        batch.add_column(sa.Column("entries", sa.JSON, nullable=True))
        batch.add_column(sa.Column("refers_to", Id, nullable=True))
    op.create_table(
        "appeals",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("statement", sa.String(500), nullable=False),
        sa.Column("decision_at", UTCDateTime, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("filed_by", sa.String(200), nullable=False),
        sa.Column("filed_at", UTCDateTime, nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("action", sa.String(40), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_appeals_client_post_id", "appeals", ["client", "post_id"])
    op.create_index("ix_appeals_status_due_at", "appeals", ["status", "due_at"])
    op.create_index(
        "uq_appeals_open_post",
        "appeals",
        ["client", "post_id"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("appeals")
    with op.batch_alter_table("review_outcomes") as batch:
        batch.drop_column("refers_to")
        batch.drop_column("entries")
