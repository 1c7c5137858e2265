"""The episode store: SQLAlchemy tables, Alembic-migrated databases, and the single writer."""
