"""Playing a tournament through the library API: store the schedule, play what is missing, resume after a kill.

A scheduled game is done when an episode linked to it finished; a game whose process died mid-play is
aborted when the tournament resumes and played again, so a schedule is never played or counted twice.
Ratings are applied in schedule order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from arena.play import Arena, GameSpec
from arena.store import tournaments as store
from arena.store.database import StoreError
from arena.store.models import TournamentRow
from arena.tournament.config import TournamentConfig
from arena.tournament.formats import Format, swiss_round


class TournamentBusy(Exception):
    """Another live process is playing the tournament."""


class UnknownTournament(LookupError):
    """No tournament of that name is stored."""


def runner_id() -> str:
    """This process, as stored in `tournaments.runner`: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def tag(name: str) -> str:
    """The tag every episode of a tournament carries."""
    return f"tournament:{name}"


async def create(arena: Arena, name: str, config: TournamentConfig) -> int:
    """Store the tournament and its schedule (a Swiss tournament's first round) before anything is played."""
    games = [asdict(game) for game in config.first_games()]
    return await arena.writer.run(store.create_tournament, name, config.format.value,
                                  config.model_dump(mode="json"), games)


def load(arena: Arena, name: str) -> tuple[TournamentRow, TournamentConfig]:
    """The stored tournament and its settings (blocking read); UnknownTournament if there is none."""
    row = arena.read(lambda session: store.get_tournament(session, name))
    if row is None:
        raise UnknownTournament(f"no tournament named '{name}' in this database")
    return row, TournamentConfig.model_validate(row.config)


def check_runner(row: TournamentRow, force: bool = False) -> None:
    """TournamentBusy if a live process on this host (or, without `force`, another host) plays it now."""
    if row.runner is None or row.status == "finished" or row.runner == runner_id():
        return
    host, _, pid = row.runner.rpartition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, ValueError):
            return  # that process is gone
        except PermissionError:
            pass
        raise TournamentBusy(f"tournament '{row.name}' is being played by process {pid}; stop it first")
    if not force:
        raise TournamentBusy(f"tournament '{row.name}' was last played on host {host} (process {pid}); "
                             "resume it there, or pass --force if that process is gone")


PlayGames = Callable[[list[GameSpec], Callable[[int], None]], Awaitable[None]]


async def play(arena: Arena, row: TournamentRow, config: TournamentConfig, concurrency: int,
               advance: Callable[[int], None] = lambda _n: None, play_games: PlayGames | None = None) -> None:
    """Play every missing game in schedule order (round by round for Swiss), then mark the tournament
    finished; `advance(n)` hears of games done (those done before first). `play_games` plays a list of
    games (default: in this process, through `arena`)."""
    await arena.writer.run(store.claim, row.id, runner_id())
    specs = {spec.name: spec for spec in config.specs}

    async def in_process(todo: list[GameSpec], done: Callable[[int], None]) -> None:
        async for _result in arena.play(todo, concurrency):
            done(1)

    try:
        games = await _schedule(arena, row.id)
        advance(sum(g.episode_id is not None for g in games))
        while True:
            missing = [g for g in games if g.episode_id is None]
            todo = [GameSpec(g.env_id, g.seed, [specs[n] for n in g.seats], [tag(row.name)], g.id) for g in missing]
            await (play_games or in_process)(todo, advance)
            games = await _schedule(arena, row.id)
            _check_complete(row.name, games)
            if not await _schedule_next_round(arena, row.id, config, games):
                break
            games = await _schedule(arena, row.id)
        await arena.writer.run(store.finish, row.id)
    except BaseException:
        await asyncio.shield(_release(arena, row.id))
        raise


class TournamentIncomplete(Exception):
    """Games the arena aborted (not the agents' doing) are still to play."""


async def _schedule(arena: Arena, tournament_id: int) -> list[store.PlayedGame]:
    return await asyncio.to_thread(arena.read, lambda session: store.played_games(session, tournament_id))


def _check_complete(name: str, games: list[store.PlayedGame]) -> None:
    missing = [g.idx for g in games if g.episode_id is None]
    if missing:
        raise TournamentIncomplete(f"{len(missing)} games of '{name}' were aborted by the arena (see their "
                                   f"episodes' reasons); `arena tournament resume {name}` plays them again")


async def _schedule_next_round(arena: Arena, tournament_id: int, config: TournamentConfig,
                               games: list[store.PlayedGame]) -> bool:
    """Store the next Swiss round, paired on the results so far; False when no round is left."""
    played_rounds = 1 + max(g.round for g in games)
    if config.format is not Format.SWISS or played_rounds >= config.rounds:
        return False
    scores, met, byes = swiss_state(config.names, games)
    new, _bye = swiss_round(config.names, config.envs, config.seeds, played_rounds, len(games), scores, met, byes)
    await arena.writer.run(store.add_games, tournament_id, [asdict(game) for game in new])
    return True


def swiss_state(names: list[str], games: list[store.PlayedGame]
                ) -> tuple[dict[str, float], set[frozenset[str]], set[str]]:
    """Each agent's score per game so far (win 1, draw 1/2), the pairs that met, and who had a bye."""
    points = dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    met: set[frozenset[str]] = set()
    present: dict[int, set[str]] = {}
    for game in games:
        present.setdefault(game.round, set()).update(game.seats)
        met.add(frozenset(game.seats))
        first, second = game.seats
        a, b = game.rewards or (0.0, 0.0)
        points[first] += 1.0 if a > b else 0.5 if a == b else 0.0
        points[second] += 1.0 if b > a else 0.5 if a == b else 0.0
        counts[first] += 1
        counts[second] += 1
    scores = {name: points[name] / counts[name] if counts[name] else 0.0 for name in names}
    byes = {name for seated in present.values() for name in names if name not in seated}
    return scores, met, byes


async def _release(arena: Arena, tournament_id: int) -> None:
    """Forget this process as the tournament's runner, if the store still takes writes."""
    with contextlib.suppress(StoreError):  # the runner check treats a dead process as gone anyway
        await arena.writer.run(store.release, tournament_id)
