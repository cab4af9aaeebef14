"""Entry-level control of banks, and their audit.

- ``banks.enabled_ratio``: the share (0 to 1) of a bank's entries that match (HMA's
  ``matching_enabled_ratio``): 1 for every bank so far, 0 for a disabled bank.
- ``bank_entries`` gain a ``note``, a ``content_id`` and ``content_uri`` (where the
  content lives on the platform or upstream), free ``metadata`` (JSON), and
  ``disabled_until``: an entry does not match before that time.
- ``bank_audit``: every change to a bank or one of its entries, who made it and when. It
  keeps the bank's name, not a key, so that a deleted bank's history stays.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.add_column(sa.Column("enabled_ratio", sa.Float, nullable=False, server_default="1.0"))
    with op.batch_alter_table("bank_entries") as batch:
        batch.add_column(sa.Column("note", sa.String(255), nullable=True))
        batch.add_column(sa.Column("content_id", sa.String(500), nullable=True))
        batch.add_column(sa.Column("content_uri", sa.Text, nullable=True))
        batch.add_column(sa.Column("metadata", sa.JSON, nullable=True))
        batch.add_column(sa.Column("disabled_until", UTCDateTime, nullable=True))
    op.create_table(
        "bank_audit",
        sa.Column("id", Id, primary_key=True),
        sa.Column("bank", sa.String(200), nullable=False, index=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("entry_id", Id, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bank_audit")
    with op.batch_alter_table("bank_entries") as batch:
        for column in ("disabled_until", "metadata", "content_uri", "content_id", "note"):
            batch.drop_column(column)
    op.drop_column("banks", "enabled_ratio")
