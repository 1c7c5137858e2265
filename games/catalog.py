"""The game catalog: every TextArena env id, its player counts, and whether it runs on this machine."""

from __future__ import annotations

import difflib
import json
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from games import probe

TEXTARENA_VERSION = "0.7.4"
VARIANT_SUFFIXES = ("-raw", "-train")
PROBE_TIME_LIMIT_S = float(os.environ.get("ARENA_PROBE_TIMEOUT", "20"))


class GameError(Exception):
    """A game cannot be played as asked: unknown id, unplayable here, or wrong number of players."""


@dataclass(frozen=True)
class GameInfo:
    """One catalog entry."""

    env_id: str
    family: str
    players: tuple[int, ...]
    playable: bool
    reason: str | None

    def players_text(self) -> str:
        """Player counts as a compact range, e.g. '2' or '3-15'."""
        if not self.players:
            return "-"
        lo, hi = self.players[0], self.players[-1]
        if list(self.players) == list(range(lo, hi + 1)):
            return str(lo) if lo == hi else f"{lo}-{hi}"
        return ",".join(map(str, self.players))


def family_of(env_id: str) -> str:
    """The id without its wrapper-variant suffix: TicTacToe-v0-raw -> TicTacToe-v0."""
    for suffix in VARIANT_SUFFIXES:
        if env_id.endswith(suffix):
            return env_id[: -len(suffix)]
    return env_id


def registered_ids() -> list[str]:
    """Every env id in TextArena's registry, in registration order."""
    from textarena.envs.registration import ENV_REGISTRY

    return list(ENV_REGISTRY)


def cache_path() -> Path:
    """Cache file, keyed by the textarena and Python versions."""
    root = os.environ.get("ARENA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "arena"
    )
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Path(root) / f"catalog-textarena{TEXTARENA_VERSION}-py{py}.json"


def _load_cache() -> dict[str, dict]:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(results: dict[str, dict]) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(path)


class _Worker:
    """One probe subprocess; killed and replaced when a probe runs past the time limit."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=probe.serve, args=(child,), daemon=True)
        self.process.start()

    def check(self, env_id: str, limit_s: float) -> dict | None:
        """Probe one id; None when it ran past `limit_s` or the worker died."""
        self.conn.send(env_id)
        try:
            if self.conn.poll(limit_s):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def stop(self, kill: bool = False) -> None:
        """End the subprocess."""
        if not kill:
            try:
                self.conn.send(None)
                self.process.join(2)
            except OSError:
                pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def check_families(
    families: Iterable[str],
    workers: int | None = None,
    limit_s: float = PROBE_TIME_LIMIT_S,
    on_done: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Probe each family id in parallel subprocesses with a time limit per id."""
    todo: queue.Queue[str] = queue.Queue()
    for family in families:
        todo.put(family)
    results: dict[str, dict] = {}
    lock = threading.Lock()

    def run_slot() -> None:
        worker = _Worker()
        while True:
            try:
                family = todo.get_nowait()
            except queue.Empty:
                break
            result = worker.check(family, limit_s)
            if result is None:
                worker.stop(kill=True)
                worker = _Worker()
                result = {"players": [], "reason": f"too slow: make+reset took more than {limit_s:.0f} s"}
            with lock:
                results[family] = result
                if on_done:
                    on_done(family, result)
        worker.stop()

    count = workers or max(2, 2 * (os.cpu_count() or 1))
    threads = [threading.Thread(target=run_slot, daemon=True) for _ in range(min(count, todo.qsize()))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _entry(env_id: str, result: dict) -> GameInfo:
    return GameInfo(
        env_id=env_id,
        family=family_of(env_id),
        players=tuple(result["players"]),
        playable=result["reason"] is None,
        reason=result["reason"],
    )


def load(env_ids: Iterable[str] | None = None, progress: Callable[[str, dict], None] | None = None
         ) -> dict[str, GameInfo]:
    """Catalog entries for `env_ids` (all ids when None), checking only families not yet cached."""
    ids = list(registered_ids() if env_ids is None else env_ids)
    cached = _load_cache()
    missing = sorted({family_of(i) for i in ids} - set(cached))
    if missing:
        cached.update(check_families(missing, on_done=progress))
        _save_cache(cached)
    return {i: _entry(i, cached[family_of(i)]) for i in ids}


def lookup(env_id: str) -> GameInfo:
    """The catalog entry of one id, or GameError naming close matches when it is unknown."""
    known = registered_ids()
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `arena games` lists them"
        raise GameError(f"unknown env id '{env_id}'{hint}")
    return load([env_id])[env_id]


def require_playable(env_id: str, num_players: int | None = None) -> GameInfo:
    """The entry of a game that runs here with `num_players`, or GameError saying why not."""
    info = lookup(env_id)
    if not info.playable:
        raise GameError(f"{env_id} cannot be played here: {info.reason}")
    if num_players is not None and num_players not in info.players:
        raise GameError(
            f"{env_id} takes {info.players_text()} players, but {num_players} agents were given"
        )
    return info


def as_json(entries: Iterable[GameInfo]) -> str:
    """The catalog as a JSON array."""
    return json.dumps([{**asdict(e), "players": list(e.players)} for e in entries], indent=1)
