"""Numeric environment ids for TextArena's online clients: TextArena's own table, then arena numbers."""

from __future__ import annotations

from functools import cache

from games import catalog

ARENA_NUMBER_BASE = 1000  # games TextArena's table lacks get 1000 + their place in the registry


@cache
def textarena_numbers() -> dict[str, int]:
    """The numbers TextArena's client knows (`NAME_TO_ID_DICT` and the MindGames table)."""
    from textarena import api

    return {**api.NAME_TO_ID_DICT, **api.MGC_NAME_TO_ID_DICT}


@cache
def all_numbers() -> dict[str, int]:
    """Every base env id (no -raw/-train variants) with its number; stable for textarena 0.7.4."""
    known = textarena_numbers()
    bases = [env_id for env_id in catalog.registered_ids() if catalog.family_of(env_id) == env_id]
    return {env_id: known.get(env_id, ARENA_NUMBER_BASE + place) for place, env_id in enumerate(bases)}


def env_for_number(number: int) -> str | None:
    """The env id a number stands for, if any."""
    return {n: env_id for env_id, n in all_numbers().items()}.get(number)
