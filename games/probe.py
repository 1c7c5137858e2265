"""Worker side of the catalog check: make and reset one env offline and report what happened."""

from __future__ import annotations

import contextlib
import io
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
    return None


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


def serve(conn: Any) -> None:
    """Worker loop: receive env ids on a pipe, answer with probe results, stay quiet otherwise."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        import textarena  # noqa: F401 - import once, share across probes

        while True:
            env_id = conn.recv()
            if env_id is None:
                return
            conn.send(probe(env_id))
            sink.seek(0)
            sink.truncate()
