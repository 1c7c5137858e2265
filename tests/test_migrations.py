"""Migrations on every database (`[sqlite]`, `[postgresql]`): they build the schema from an empty
database, and that schema is exactly what the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from arena.store.database import alembic_config, create, open_database
from arena.store.models import Base

TABLES = {"agents", "episodes", "episode_seats", "turns", "ratings", "rating_history", "alembic_version", "tournaments",
          "tournament_games"}


def test_upgrade_head_builds_the_schema_from_an_empty_database(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == TABLES
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert MigrationContext.configure(connection).get_current_revision() == head
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations disagree (alembic revision --autogenerate)"


def test_upgrading_relabels_old_team_wins_and_keeps_real_draws(db_url: str) -> None:
    engine = create(db_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        for agent, name in enumerate("abc", start=1):
            connection.execute(text("INSERT INTO agents (id, name, kind, spec, created_at) VALUES (:id, :name, "
                                    "'house', '', CURRENT_TIMESTAMP)"), {"id": agent, "name": name})
        for episode, rewards in ((1, (1.0, 1.0, -1.0)), (2, (0.0, 0.0, 0.0))):
            connection.execute(text("INSERT INTO episodes (id, env_id, seed, num_players, status, invalid_policy, "
                                    "started_at, tags) VALUES (:id, 'SecretMafia-v0', 1, 3, 'finished', 'textarena', "
                                    "CURRENT_TIMESTAMP, '[]')"), {"id": episode})
            for seat, reward in enumerate(rewards):  # the old labels: tied at the top was a draw
                old = "draw" if reward == max(rewards) else "loss"
                connection.execute(text("INSERT INTO episode_seats (episode_id, seat, agent_id, reward, result, "
                                        "invalid_moves) VALUES (:e, :s, :a, :r, :l, 0)"),
                                   {"e": episode, "s": seat, "a": seat + 1, "r": reward, "l": old})
    open_database(db_url).dispose()
    with engine.connect() as connection:
        labels = connection.execute(text("SELECT episode_id, seat, result FROM episode_seats ORDER BY 1, 2")).all()
    engine.dispose()
    assert [tuple(row) for row in labels] == [(1, 0, "win"), (1, 1, "win"), (1, 2, "loss"),
                                              (2, 0, "draw"), (2, 1, "draw"), (2, 2, "draw")]
