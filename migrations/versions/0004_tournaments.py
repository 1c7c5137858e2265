"""Tournaments: their stored schedules, and the link from an episode to the scheduled game it plays.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create tournaments and tournament_games; add episodes.tournament_game_id."""
    op.create_table(
        "tournaments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("runner", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "tournament_games",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tournament_id", sa.Integer(), sa.ForeignKey("tournaments.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("env_id", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("seats", sa.JSON(), nullable=False),
        sa.UniqueConstraint("tournament_id", "idx"),
    )
    op.create_index("ix_tournament_games_tournament_id", "tournament_games", ["tournament_id"])
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("tournament_game_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_episodes_tournament_game_id", "tournament_games", ["tournament_game_id"],
                                 ["id"], ondelete="SET NULL")
        batch.create_index("ix_episodes_tournament_game_id", ["tournament_game_id"])
    finished = sa.text("status = 'finished'")
    op.create_index("uq_episodes_finished_tournament_game", "episodes", ["tournament_game_id"], unique=True,
                    sqlite_where=finished, postgresql_where=finished)


def downgrade() -> None:
    """Drop the tournament tables and the episode link."""
    op.drop_index("uq_episodes_finished_tournament_game", "episodes")
    with op.batch_alter_table("episodes") as batch:
        batch.drop_index("ix_episodes_tournament_game_id")
        batch.drop_constraint("fk_episodes_tournament_game_id", type_="foreignkey")
        batch.drop_column("tournament_game_id")
    op.drop_index("ix_tournament_games_tournament_id", "tournament_games")
    op.drop_table("tournament_games")
    op.drop_table("tournaments")
