"""Agents get an optional email: TextArena clients register models under one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add agents.email."""
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))


def downgrade() -> None:
    """Drop agents.email."""
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("email")
