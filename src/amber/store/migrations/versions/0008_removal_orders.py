"""Decisions record when a removal order last arrived for the post's version.

A post under a removal order must have its evidence, whatever amber decided about it:
``evidence verify`` and ``amber doctor`` report an ordered post with none. The order is
for the version it found: ``decision_versions`` keeps the time too when new content
supersedes that version (the new version starts without one).

On SQLite, dropping the column (downgrade) rebuilds ``decisions``; dropping the old table
would cascade to ``post_media`` and ``media_signals`` (foreign keys are on), so their rows
are set aside first and put back after, as 0007 does.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from amber.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("decisions", "decision_versions")
#: Tables whose rows refer to ``decisions.id`` with ON DELETE CASCADE.
CHILDREN = ("post_media", "media_signals")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("removal_ordered_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decision_versions") as batch:
        batch.drop_column("removal_ordered_at")
    with _children_kept(), op.batch_alter_table("decisions") as batch:
        batch.drop_column("removal_ordered_at")


@contextmanager
def _children_kept() -> Iterator[None]:
    """On SQLite, keep the rows of ``CHILDREN`` across a rebuild of ``decisions``."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    run: Callable[[str], object] = op.get_bind().exec_driver_sql
    for table in CHILDREN:
        run(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")
    yield
    for table in CHILDREN:
        run(f"DELETE FROM {table}")  # none are left if the rebuild's DROP cascaded
        run(f"INSERT INTO {table} SELECT * FROM kept_{table}")
        run(f"DROP TABLE kept_{table}")
