"""Bank rows gain an index on ``(signal_type, id)``: a matching process asks every second
for each of its indexes' rows above the newest it holds, and without this index the
database reads every row above it, of every type, to find them (a PDQ index behind five
million keypoint rows: 0.4 s of SQLite a second, on every matching process).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entry_signals_type_id", "entry_signals", ["signal_type", "id"])


def downgrade() -> None:
    op.drop_index("ix_entry_signals_type_id", table_name="entry_signals")
