"""Reading the moves a game offers out of its observation text."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"\[([^\[\]\n]{1,80})\]")
_MOVE_LIST = re.compile(
    r"(valid|available|legal|possible)[ _-]*(moves?|actions?|options?|bids?|columns?)[^\n:]*:", re.IGNORECASE
)
_SPEAKER = re.compile(r"^(GAME|Player \d+|[A-Z][\w ]{0,20})$")


def valid_moves(observation: str) -> list[str]:
    """Moves listed after the last 'Valid moves:' style heading, e.g. ['[4]', '[a2a3]']."""
    headings = list(_MOVE_LIST.finditer(observation))
    if not headings:
        return []
    tail = observation[headings[-1].end():]
    line = tail.split("\n[", 1)[0]
    return _unique(f"[{m.group(1).strip()}]" for m in _BRACKETED.finditer(line))


def bracketed_tokens(observation: str) -> list[str]:
    """Every bracketed token in the text that is not a speaker tag such as [GAME] or [Player 1]."""
    tokens = (m.group(1).strip() for m in _BRACKETED.finditer(observation))
    return _unique(f"[{t}]" for t in tokens if t and not _SPEAKER.match(t))


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
