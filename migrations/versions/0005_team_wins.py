"""Team wins are wins: a seat tied at the top reward is labelled 'win' unless every seat has the same reward.

Before, a seat tied with another at the top was a 'draw' (every winner of a SecretMafia game, for example).
Only those labels change; 'win', 'loss' and real draws (all rewards equal) stay as they were. Ratings are
derived from rewards, not labels, so they are unaffected.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TOP = "(SELECT MAX(o.reward) FROM episode_seats o WHERE o.episode_id = episode_seats.episode_id)"
BOTTOM = "(SELECT MIN(o.reward) FROM episode_seats o WHERE o.episode_id = episode_seats.episode_id)"


def upgrade() -> None:
    """Relabel 'draw' seats at the top reward of a game whose rewards differ as 'win'."""
    op.execute(f"UPDATE episode_seats SET result = 'win' WHERE result = 'draw' AND reward = {TOP} AND {BOTTOM} < {TOP}")


def downgrade() -> None:
    """Label a win shared with another seat 'draw' again, as the old rule did."""
    shared = ("(SELECT COUNT(*) FROM episode_seats o WHERE o.episode_id = episode_seats.episode_id "
              "AND o.reward = episode_seats.reward)")
    op.execute(f"UPDATE episode_seats SET result = 'draw' WHERE result = 'win' AND {shared} > 1")
