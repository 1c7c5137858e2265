"""Episodes carry the order their ratings were applied in, not the order they finished.

Scheduled play rates games in schedule order, the live server in finishing order; `arena ratings
rebuild` replays `rating_seq` to reproduce either. Existing values (finishing order) keep their meaning.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rename episodes.finished_seq to rating_seq."""
    with op.batch_alter_table("episodes") as batch:
        batch.alter_column("finished_seq", new_column_name="rating_seq")


def downgrade() -> None:
    """Rename episodes.rating_seq back to finished_seq."""
    with op.batch_alter_table("episodes") as batch:
        batch.alter_column("rating_seq", new_column_name="finished_seq")
