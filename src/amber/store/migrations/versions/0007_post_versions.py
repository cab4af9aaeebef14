"""Post ids are scoped to their client, and a post keeps its earlier versions.

``decisions`` gains ``client`` (the API token's name; ``_local`` for the command line,
the library and every decision stored before this migration), ``version`` (1 for those)
and ``content_digest`` (unknown for those); its post id is unique per client instead of
globally. ``review_outcomes`` gains ``client`` too. ``decision_versions`` holds the
versions a newer one replaced.

On SQLite the unique constraint can only change by rebuilding ``decisions``; dropping the
old table would cascade to ``post_media`` and ``media_signals`` (foreign keys are on), so
their rows are set aside first and put back after.

Downgrade refuses while two clients hold the same post id (one post id, one decision,
could not hold); otherwise the columns go and so do earlier versions' rows (their
evidence stays in the vault).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import sqlalchemy as sa
from alembic import op

from amber.store.tables import Id, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DEFAULT_CLIENT = "_local"  # amber.identity.DEFAULT_CLIENT, as of this migration
#: Tables whose rows refer to ``decisions.id`` with ON DELETE CASCADE.
CHILDREN = ("post_media", "media_signals")


def upgrade() -> None:
    rebuild: Literal["always", "auto"] = "always" if _sqlite() else "auto"
    with _children_kept(), op.batch_alter_table("decisions", recreate=rebuild) as b:
        b.add_column(
            sa.Column("client", sa.String(200), nullable=False, server_default=DEFAULT_CLIENT)
        )
        b.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        b.add_column(sa.Column("content_digest", sa.String(64), nullable=True))
        b.drop_constraint("uq_decisions_post_id", type_="unique")
        b.create_unique_constraint("uq_decisions_client_post_id", ["client", "post_id"])
    with op.batch_alter_table("review_outcomes") as batch:
        batch.add_column(
            sa.Column("client", sa.String(200), nullable=False, server_default=DEFAULT_CLIENT)
        )
    op.create_table(
        "decision_versions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("post_id", sa.String(500), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("post", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("amber_version", sa.String(40), nullable=False),
        sa.Column("first_scanned_at", UTCDateTime, nullable=False),
        sa.Column("scanned_at", UTCDateTime, nullable=False),
        sa.Column("scan_count", sa.Integer, nullable=False),
        sa.Column("author", sa.String(500), nullable=True),
        sa.Column("reply_to", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=True),
        sa.Column("review_state", sa.String(20), nullable=False),
        sa.Column("superseded_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_versions"),
        sa.UniqueConstraint(
            "client", "post_id", "version", name="uq_decision_versions_client_post_id_version"
        ),
    )


def downgrade() -> None:
    bind = op.get_bind()
    shared = bind.execute(
        sa.text(
            "SELECT post_id FROM decisions GROUP BY post_id HAVING COUNT(*) > 1 "
            "ORDER BY post_id LIMIT 5"
        )
    ).scalars()
    clash = list(shared)
    if clash:
        raise RuntimeError(
            "cannot downgrade below 0007: several clients hold post ids "
            f"{', '.join(map(repr, clash))}, and before 0007 a post id had one decision; "
            "keep this amber version (or export and delete one client's decisions first)"
        )
    op.drop_table("decision_versions")
    with op.batch_alter_table("review_outcomes") as batch:
        batch.drop_column("client")
    rebuild: Literal["always", "auto"] = "always" if _sqlite() else "auto"
    with _children_kept(), op.batch_alter_table("decisions", recreate=rebuild) as b:
        b.drop_constraint("uq_decisions_client_post_id", type_="unique")
        b.create_unique_constraint("uq_decisions_post_id", ["post_id"])
        b.drop_column("content_digest")
        b.drop_column("version")
        b.drop_column("client")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


@contextmanager
def _children_kept() -> Iterator[None]:
    """On SQLite, keep the rows of ``CHILDREN`` across a rebuild of ``decisions``."""
    if not _sqlite():
        yield
        return
    run: Callable[[str], object] = op.get_bind().exec_driver_sql
    for table in CHILDREN:
        run(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")
    yield
    for table in CHILDREN:
        run(f"DELETE FROM {table}")  # none are left: the rebuild's DROP cascaded
        run(f"INSERT INTO {table} SELECT * FROM kept_{table}")
        run(f"DROP TABLE kept_{table}")
