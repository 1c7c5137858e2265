"""Reading the moves a game offers out of its observation text."""

from __future__ import annotations

import re
from collections.abc import Callable

from games.catalog import game_and_variant

_BRACKETED = re.compile(r"\[([^\[\]\n]{1,80})\]")
_MOVE_LIST = re.compile(
    r"(valid|available|legal|possible)[ _-]*(moves?|actions?|options?|bids?|columns?)[^\n:]*:", re.IGNORECASE
)
_CONNECT_FOUR_BOARD = re.compile(r"Board state:\n(?P<header>[\d ]+)\n-+\n(?P<top>[^\n]+)")


def valid_moves(observation: str, env_id: str = "") -> list[str]:
    """Moves listed after the last 'Valid moves:' style heading, e.g. ['[4]', '[a2a3]']; for a game that lists
    none but shows them on its board (`env_id` says which), the moves its board allows, e.g. ['[col 3]']."""
    headings = list(_MOVE_LIST.finditer(observation))
    if headings:
        tail = observation[headings[-1].end():]
        line = tail.split("\n[", 1)[0]
        return _unique(f"[{m.group(1).strip()}]" for m in _BRACKETED.finditer(line))
    reader = _BOARD_READERS.get(game_and_variant(env_id)[0]) if env_id else None
    return reader(observation) if reader else []


def _connect_four(observation: str) -> list[str]:
    """The columns whose top cell is empty on the last board shown."""
    boards = list(_CONNECT_FOUR_BOARD.finditer(observation))
    if not boards:
        return []
    columns, top = boards[-1]["header"].split(), boards[-1]["top"].split()
    return [f"[col {column}]" for column, cell in zip(columns, top, strict=False) if cell == "."]


_BOARD_READERS: dict[str, Callable[[str], list[str]]] = {"ConnectFour": _connect_four}


def bracketed_tokens(observation: str) -> list[str]:
    """Every bracketed token in the text except speaker tags: [GAME], or a tag opening a line."""
    tokens = (m.group(1).strip() for m in _BRACKETED.finditer(observation) if not _is_speaker(observation, m))
    return _unique(f"[{t}]" for t in tokens if t)


def _is_speaker(text: str, match: re.Match) -> bool:
    return match.group(1) == "GAME" or match.start() == 0 or text[match.start() - 1] == "\n"


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
