"""Storage: SQLAlchemy Core tables, one schema for SQLite and PostgreSQL, Alembic migrations."""
