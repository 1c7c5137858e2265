"""Worker side of the catalog check: make and reset one env offline and report what happened."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from typing import Any

MAX_PLAYERS = 15


def classify(error: BaseException) -> str:
    """Turn an exception raised by make/reset into a short, human reason."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, SyntaxError):
        where = f"{os.path.basename(error.filename or '?')}:{error.lineno}"
        if sys.version_info < (3, 12):
            return f"Python syntax: needs Python 3.12+ ({error.msg} at {where})"
        return f"Python syntax: the game's source does not compile ({error.msg} at {where})"
    if "nltk" in text.lower() or "Resource " in text and "not found" in text:
        return "corpus download at import: needs nltk data, which cannot be downloaded offline"
    if "OPENROUTER" in text.upper() or "api key" in text.lower() or "api_key" in text.lower():
        return "API key needed: the game calls a hosted LLM (OpenRouter)"
    missing = re.search(r"No module named '([\w.]+)'", text)
    if missing and missing.group(1).startswith("textarena."):
        return f"missing data: the registry names module {missing.group(1)}, which the wheel lacks"
    if missing:
        return f"missing dependency: the game imports '{missing.group(1)}', which is not installed"
    if isinstance(error, FileNotFoundError) or "No such file" in text:
        name = getattr(error, "filename", None) or text
        return f"missing data: {os.path.basename(str(name))} is not in the textarena wheel"
    return f"fails at make/reset: {text[:200]}"


def _try_players(env_id: str, n: int) -> BaseException | None:
    import textarena as ta

    try:
        env = ta.make(env_id)
        env.reset(num_players=n, seed=0)
        env.get_observation()
    except Exception as error:  # noqa: BLE001 - any failure is information here
        return error
    seated = getattr(env.state, "num_players", n)  # some games ignore num_players and seat their own count
    return None if seated == n else ValueError(f"asked for {n} players, the game seated {seated}")


def probe(env_id: str) -> dict[str, Any]:
    """Make and reset `env_id` for every player count up to MAX_PLAYERS; return counts or a reason."""
    import textarena as ta

    try:
        ta.make(env_id)
    except BaseException as error:  # noqa: BLE001 - SyntaxError and SystemExit included
        return {"players": [], "reason": classify(error)}
    players, errors = [], []
    for n in range(1, MAX_PLAYERS + 1):
        error = _try_players(env_id, n)
        if error is None:
            players.append(n)
        else:
            errors.append(error)
    if players:
        return {"players": players, "reason": None}
    informative = [e for e in errors if not isinstance(e, AssertionError | ValueError)]
    return {"players": [], "reason": classify((informative or errors)[0])}


def probe_family(family: str, variants: list[str]) -> dict[str, dict[str, Any]]:
    """Probe the family id fully; each variant (-raw, -train) once, at the family's first player count."""
    base = probe(family)
    results = {family: base}
    for variant in variants:
        if base["reason"] is not None:
            results[variant] = base
            continue
        error = _try_players(variant, base["players"][0])
        results[variant] = base if error is None else {"players": [], "reason": classify(error)}
    return results


def serve() -> None:
    """Worker loop: JSON tasks in on stdin, one JSON result per line out; the games' own output is muted."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = io.StringIO()
    import textarena  # noqa: F401 - import once, share across probes

    for line in sys.stdin:
        task = json.loads(line)
        channel.write(json.dumps(probe_family(task["family"], task["variants"])) + "\n")
        sys.stdout.seek(0)
        sys.stdout.truncate()


if __name__ == "__main__":
    serve()
