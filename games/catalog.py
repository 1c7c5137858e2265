"""The game catalog: every TextArena env id, its player counts, and whether it runs on this machine."""

from __future__ import annotations

import difflib
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from arena.paths import cache_root

TEXTARENA_VERSION = "0.7.4"
VARIANT_SUFFIXES = ("-raw", "-train")
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
PROBE_TIME_LIMIT_S = float(os.environ.get("ARENA_PROBE_TIMEOUT", "20"))
DESCRIPTIONS = Path(__file__).with_name("descriptions.toml")
_ID = re.compile(r"^(?P<game>.*?)-v(?P<version>\d+)(?:-(?P<variant>.+))?$")


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


def game_and_variant(env_id: str) -> tuple[str, str]:
    """The game an id plays and which variant of it: 2048-v0-hard-train -> ('2048', 'hard-train'),
    TicTacToe-v0 -> ('TicTacToe', ''), Chess-v1 -> ('Chess', 'v1')."""
    match = _ID.match(env_id)
    if match is None:
        return env_id, ""
    version = match["version"]
    return match["game"], "-".join(filter(None, ["" if version == "0" else f"v{version}", match["variant"]]))


@cache
def descriptions() -> dict[str, str]:
    """One line per game, for the lobby (games/descriptions.toml)."""
    return tomllib.loads(DESCRIPTIONS.read_text())


def registered_ids() -> list[str]:
    """Every env id in TextArena's registry, in registration order."""
    from textarena.envs.registration import ENV_REGISTRY

    return list(ENV_REGISTRY)


def cache_path() -> Path:
    """Cache file, keyed by the probe's, textarena's and Python's versions."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cache_root() / f"catalog-v{PROBE_VERSION}-textarena{TEXTARENA_VERSION}-py{py}.json"


PROBE_VERSION = 2  # raise when games/probe.py judges differently, so that old cache files are not read
TOO_SLOW = "too slow"
MAX_SLOW_SHARE = 0.05  # more "too slow" verdicts than this share of one check: the machine was busy, check again
RECHECK = "recheck"  # a verdict marked so is not written to the cache file
_MEMORY: dict[Path, dict[str, dict]] = {}  # the cache file, read once per process


def _load_cache() -> dict[str, dict]:
    path = cache_path()
    if path not in _MEMORY:
        try:
            _MEMORY[path] = json.loads(path.read_text())
        except (OSError, ValueError):
            _MEMORY[path] = {}
    return _MEMORY[path]


def _save_cache(results: dict[str, dict]) -> None:
    """Keep every verdict for this process; on disk, all but those marked for a check again."""
    path = cache_path()
    _MEMORY[path] = results
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # threads of one process save too
    lasting = {env_id: r for env_id, r in results.items() if not r.get(RECHECK)}
    tmp.write_text(json.dumps(lasting, indent=1, sort_keys=True))
    tmp.replace(path)


def _mark_busy_verdicts(found: dict[str, dict]) -> dict[str, dict]:
    """Mark "too slow" verdicts for a check again in the next process, unless few of this check's games were slow:
    a busy machine makes every game slow, while a game slow on its own (Sudoku-v0-hard) is slow among quick ones."""
    slow = [env_id for env_id, r in found.items() if (r["reason"] or "").startswith(TOO_SLOW)]
    if len(slow) > MAX_SLOW_SHARE * len(found):
        found = {**found, **{env_id: {**found[env_id], RECHECK: True} for env_id in slow}}
    return found


class _Worker:
    """One probe subprocess; killed and replaced when a probe runs past the time limit."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "games.probe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1, cwd=_PROJECT_ROOT,
        )

    def check(self, family: str, variants: list[str], limit_s: float) -> dict[str, dict] | None:
        """Probe one family and its variants; None when it ran past `limit_s`."""
        assert self.process.stdin and self.process.stdout
        try:
            self.process.stdin.write(json.dumps({"family": family, "variants": variants}) + "\n")
            self.process.stdin.flush()
        except OSError:
            return None
        ready, _, _ = select.select([self.process.stdout], [], [], limit_s)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            crash = {"players": [], "reason": f"the game crashed its process (exit code {self.process.wait()})"}
            return dict.fromkeys([family, *variants], crash)
        return json.loads(line)

    def stop(self) -> None:
        """End the subprocess."""
        self.process.kill()
        self.process.wait()


def check_ids(
    env_ids: Iterable[str],
    workers: int | None = None,
    limit_s: float = PROBE_TIME_LIMIT_S,
) -> dict[str, dict]:
    """Probe ids in parallel subprocesses, one task per family, with a time limit per task."""
    families: dict[str, list[str]] = {}
    for env_id in env_ids:
        variants = families.setdefault(family_of(env_id), [])
        if env_id != family_of(env_id):
            variants.append(env_id)
    todo: queue.Queue[tuple[str, list[str]]] = queue.Queue()
    for task in families.items():
        todo.put(task)
    results: dict[str, dict] = {}

    def run_slot() -> None:
        worker = _Worker()
        while True:
            try:
                family, variants = todo.get_nowait()
            except queue.Empty:
                break
            found = worker.check(family, variants, limit_s)
            if found is None:
                slow = {"players": [], "reason": f"{TOO_SLOW}: make+reset took more than {limit_s:.0f} s"}
                found = dict.fromkeys([family, *variants], slow)
            if any(r["reason"] for r in found.values()):  # a failed game may leave the worker broken or busy
                worker.stop()
                worker = _Worker()
            results.update(found)
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


def load(env_ids: Iterable[str] | None = None) -> dict[str, GameInfo]:
    """Catalog entries for `env_ids` (all ids when None), checking only ids not yet cached."""
    ids = list(registered_ids() if env_ids is None else env_ids)
    cached = _load_cache()
    missing = [i for i in ids if i not in cached]
    if missing:
        cached = {**cached, **_mark_busy_verdicts(check_ids(missing))}
        _save_cache(cached)
    return {i: _entry(i, cached[i]) for i in ids}


def lookup(env_id: str) -> GameInfo:
    """The catalog entry of one id, or GameError naming close matches when it is unknown."""
    from textarena.envs.registration import ENV_REGISTRY

    if env_id not in ENV_REGISTRY:
        close = difflib.get_close_matches(env_id, list(ENV_REGISTRY), n=3)
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
