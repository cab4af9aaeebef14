"""Alembic environment: amber runs migrations on the connection it opened itself."""

from __future__ import annotations

from alembic import context

from amber.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("amber migrations run through amber.store.db.migrate(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
