"""Incidents (issue 15, point 3): the posts of one harm linked as they are decided.

- ``incidents``: one per linked set of a client's posts, with its one escalation to the
  authorities for a threat to life (EU DSA Art. 18) and when its custody event was logged;
- ``incident_members``: each post in an incident (at most one) and why it was linked;
- ``incident_keys``: what a flagged post can be linked by later (a bank entry it matched,
  a media file's SHA-256).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("escalated_at", UTCDateTime, nullable=True),
        sa.Column("escalation", sa.JSON, nullable=True),
        sa.Column("escalation_logged_at", UTCDateTime, nullable=True),
        sa.Column("merged_into", Id, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_incidents_client_updated_at", "incidents", ["client", "updated_at"])
    op.create_table(
        "incident_members",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, nullable=False),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("why", sa.JSON, nullable=False),
        sa.Column("linked_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("client", "post_id"),
    )
    op.create_index("ix_incident_members_incident_id", "incident_members", ["incident_id"])
    op.create_table(
        "incident_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("client", "post_id", "key"),
    )
    op.create_index("ix_incident_keys_client_key", "incident_keys", ["client", "key"])


def downgrade() -> None:
    op.drop_table("incident_keys")
    op.drop_table("incident_members")
    op.drop_table("incidents")
