"""A random id for the database, so caches derived from it know which one they hold.

The PDQ index of a PostgreSQL database lives in the user's cache, keyed by URL; a schema
dropped and created again under the same URL (or a SQLite file replaced by another) must
not be served from the old index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from amber.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "database_instance",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.bulk_insert(table, [{"id": str(uuid.uuid4()), "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("database_instance")
