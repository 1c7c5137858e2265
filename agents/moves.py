"""Reading the moves a game offers out of its observation text."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"\[([^\[\]\n]{1,80})\]")
_MOVE_LIST = re.compile(
    r"(valid|available|legal|possible)[ _-]*(moves?|actions?|options?|bids?|columns?)[^\n:]*:", re.IGNORECASE
)


def valid_moves(observation: str) -> list[str]:
    """Moves listed after the last 'Valid moves:' style heading, e.g. ['[4]', '[a2a3]']."""
    headings = list(_MOVE_LIST.finditer(observation))
    if not headings:
        return []
    tail = observation[headings[-1].end():]
    line = tail.split("\n[", 1)[0]
    return _unique(f"[{m.group(1).strip()}]" for m in _BRACKETED.finditer(line))


def bracketed_tokens(observation: str) -> list[str]:
    """Every bracketed token in the text except speaker tags: [GAME], or a tag opening a line."""
    tokens = (m.group(1).strip() for m in _BRACKETED.finditer(observation) if not _is_speaker(observation, m))
    return _unique(f"[{t}]" for t in tokens if t)


def _is_speaker(text: str, match: re.Match) -> bool:
    return match.group(1) == "GAME" or match.start() == 0 or text[match.start() - 1] == "\n"


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
