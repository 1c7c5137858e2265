"""Sans-I/O game engine: one TextArena game, N seats; actions in, events out.

The engine holds no sockets, threads, database or clock. Callers pass elapsed time in and act on
the events it returns. Each game keeps its own random state, so the same (env id, seed, actions)
gives the same observations however many other games run in the same process.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cache, wraps
from typing import Any, NamedTuple

import textarena as ta

from arena.protocol import GameStatus, InvalidMoveKind

FORFEIT_REWARD = -1.0
DEFAULT_MAX_TURNS = 1000


class EngineError(Exception):
    """An action the engine refuses: out of turn, wrong seat, or a finished game."""


@dataclass(frozen=True)
class InvalidMovePolicy:
    """What an invalid move costs: the game's own allowance, an instant forfeit, or N resubmits."""

    kind: InvalidMoveKind = InvalidMoveKind.TEXTARENA
    retries: int = 0

    @classmethod
    def parse(cls, text: str) -> InvalidMovePolicy:
        """Parse 'textarena', 'forfeit' or 'retry:N'."""
        if text in (InvalidMoveKind.TEXTARENA, InvalidMoveKind.FORFEIT):
            return cls(kind=InvalidMoveKind(text))
        match = re.fullmatch(r"retry:(\d+)", text)
        if match:
            return cls(kind=InvalidMoveKind.RETRY, retries=int(match.group(1)))
        raise ValueError(f"invalid-move policy must be textarena, forfeit or retry:N, not '{text}'")

    def __str__(self) -> str:
        return f"retry:{self.retries}" if self.kind == InvalidMoveKind.RETRY else str(self.kind)


class Message(NamedTuple):
    """One game message: sender (-1 is the game), text and TextArena observation type name."""

    sender: int
    text: str
    kind: str


@dataclass
class Turn:
    """One action taken in the game, as the log records it."""

    index: int
    seat: int
    observation: str
    action: str
    invalid: bool
    elapsed: float
    invalid_reason: str | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """How a game ended."""

    status: GameStatus  # finished or aborted
    rewards: dict[int, float]
    reason: str
    forfeit_seat: int | None = None


@dataclass
class ActionRequired:
    """Seat `seat` must act on `observation`."""

    seat: int
    observation: str


@dataclass
class MessagesDelivered:
    """New messages addressed to `seat` (to that seat alone or to everyone)."""

    seat: int
    messages: list[Message]


@dataclass
class PublicMessages:
    """New messages every seat received: the spectators' view."""

    messages: list[Message]


@dataclass
class TurnRecorded:
    """A turn was added to the log."""

    turn: Turn


@dataclass
class GameOver:
    """The game ended."""

    outcome: Outcome


Event = ActionRequired | MessagesDelivered | PublicMessages | TurnRecorded | GameOver


def _format_messages(messages: list) -> str:
    """Render raw (-raw env) observation tuples as text."""
    lines = []
    for sender, text, _kind in messages:
        name = "GAME" if sender == ta.GAME_ID else f"Player {sender}"
        lines.append(f"[{name}] {text}")
    return "\n".join(lines)


_KIND_NAMES = {kind: kind.name for kind in ta.ObservationType}


def _messages(queued: list) -> list[Message]:
    """TextArena's (sender, text, ObservationType) tuples as Messages."""
    return [Message(sender, text if type(text) is str else str(text), _KIND_NAMES.get(kind) or str(kind))
            for sender, text, kind in queued]


class Game:
    """One game of any TextArena env for N seats, driven by the caller."""

    def __init__(
        self,
        env_id: str,
        num_players: int,
        seed: int,
        policy: InvalidMovePolicy | None = None,
        move_timeout: float | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        make: Callable[[str], Any] = ta.make,
        guard: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        self.env_id = env_id
        self.num_players = num_players
        self.seed = seed
        self.policy = policy or InvalidMovePolicy()
        self.move_timeout = move_timeout
        self.max_turns = max_turns
        self.turns: list[Turn] = []
        self.outcome: Outcome | None = None
        self.pending: ActionRequired | None = None
        self.public_log: list[Message] = []
        self.seat_logs: dict[int, list[Message]] = {s: [] for s in range(num_players)}
        self._make = make
        self._guard = guard
        self._env: Any = None
        self._random = random.Random(seed)  # this game's `random` generator
        self._numpy_random: Any = None  # and its numpy.random.RandomState, made on first use
        self._seen = dict.fromkeys(range(num_players), 0)
        self._invalid: str | None = None
        self._invalid_flag = False

    @property
    def done(self) -> bool:
        """Whether the game has ended."""
        return self.outcome is not None

    # --- driving the game -------------------------------------------------------------------

    def start(self) -> list[Event]:
        """Make a fresh env, reset it with the seed, and return the first events."""
        if self._env is not None or self.done:
            raise EngineError("game already started")
        with self._own_randomness():
            try:
                self._env = self._make(self.env_id)
                self._env.reset(num_players=self.num_players, seed=self.seed)
                self._apply_policy()
                return self._after_game_call()
            except Exception as error:  # noqa: BLE001 - a bug in the game is not a player's fault
                return self.abort(f"game error at start: {type(error).__name__}: {error}")

    def act(self, seat: int, action: str, elapsed: float, info: dict[str, Any] | None = None) -> list[Event]:
        """Apply `seat`'s action; a move slower than the timeout forfeits instead."""
        observation = self._check_turn(seat)
        if self.move_timeout is not None and elapsed > self.move_timeout:
            return self.time_out(seat, elapsed)
        self.pending = None
        self._invalid, self._invalid_flag = None, False
        with self._own_randomness():
            try:
                done, _ = self._env.step(action)
            except Exception as error:  # noqa: BLE001 - a bug in the game is not a player's fault
                turn = self._record(seat, observation, action, elapsed, info, invalid=False,
                                    error=f"game error: {type(error).__name__}: {error}")
                return [TurnRecorded(turn), *self.abort(turn.error or "game error")]
            turn = self._record(seat, observation, action, elapsed, info, invalid=self._invalid_flag)
            events: list[Event] = [TurnRecorded(turn)]
            if turn.invalid and self.policy.kind == InvalidMoveKind.FORFEIT and not done:
                return events + self._forfeit(seat, f"invalid move: {turn.invalid_reason}")
            if not done and len(self.turns) >= self.max_turns:
                return events + self.abort(f"turn limit: no result after {self.max_turns} actions")
            try:
                return events + self._after_game_call()
            except Exception as error:  # noqa: BLE001
                return events + self.abort(f"game error: {type(error).__name__}: {error}")

    def time_out(self, seat: int, elapsed: float) -> list[Event]:
        """Record that `seat` ran past the move deadline; it forfeits."""
        observation = self._check_turn(seat)
        limit = f" (limit {self.move_timeout:g} s)" if self.move_timeout is not None else ""
        reason = f"timeout: no move after {elapsed:.1f} s{limit}"
        turn = self._record(seat, observation, "", elapsed, None, invalid=False, error=reason)
        return [TurnRecorded(turn), *self._forfeit(seat, reason)]

    def fail(self, seat: int, error: str, elapsed: float) -> list[Event]:
        """Record that `seat`'s agent raised `error`; it forfeits."""
        observation = self._check_turn(seat)
        turn = self._record(seat, observation, "", elapsed, None, invalid=False, error=error)
        return [TurnRecorded(turn), *self._forfeit(seat, f"agent error: {error}")]

    def forfeit(self, seat: int, reason: str) -> list[Event]:
        """End the game now with `seat` losing (resignation, disconnect)."""
        if self.done:
            raise EngineError("the game is already over")
        return self._forfeit(seat, reason)

    def abort(self, reason: str) -> list[Event]:
        """End the game without a result (the arena's own doing); it is not rated."""
        if self.done:
            return []
        return [self._over(Outcome(status=GameStatus.ABORTED, rewards={}, reason=reason))]

    # --- internals --------------------------------------------------------------------------

    def _check_turn(self, seat: int) -> str:
        if self.done:
            raise EngineError("the game is already over")
        if self.pending is None:
            raise EngineError("no action is expected now")
        if seat != self.pending.seat:
            raise EngineError(f"it is seat {self.pending.seat}'s turn, not seat {seat}'s")
        return self.pending.observation

    def _record(self, seat: int, observation: str, action: str, elapsed: float,
                info: dict[str, Any] | None, invalid: bool, error: str | None = None) -> Turn:
        turn = Turn(
            index=len(self.turns), seat=seat, observation=observation, action=action,
            invalid=invalid, elapsed=elapsed, invalid_reason=self._invalid if invalid else None,
            error=error, info=dict(info or {}),
        )
        self.turns.append(turn)
        return turn

    def _forfeit(self, seat: int, reason: str) -> list[Event]:
        rewards = {s: (FORFEIT_REWARD if s == seat else 1.0) for s in range(self.num_players)}
        return [self._over(Outcome(GameStatus.FINISHED, rewards, f"Player {seat} forfeited: {reason}", seat))]

    def _over(self, outcome: Outcome) -> GameOver:
        """End the game with `outcome`; unhook and let go of the env (the hook refers to this game and to the
        state, a cycle that would leave every finished game to the garbage collector)."""
        if self._env is not None:
            vars(self._env.state).pop("set_invalid_move", None)
        self.pending, self.outcome, self._env = None, outcome, None
        return GameOver(outcome)

    def _apply_policy(self) -> None:
        """Set the error allowance the policy asks for and listen for invalid moves."""
        state = self._env.state
        if self.policy.kind != InvalidMoveKind.TEXTARENA and hasattr(state, "error_allowance"):
            state.error_allowance = self.policy.retries
        original = state.set_invalid_move

        def set_invalid_move(*args: Any, **kwargs: Any) -> Any:
            self._invalid_flag = True
            self._invalid = str(kwargs.get("reason", args[0] if args else ""))
            return original(*args, **kwargs)

        state.set_invalid_move = set_invalid_move

    def _after_game_call(self) -> list[Event]:
        """Collect new messages, then either close the game or ask the next seat to act."""
        events = self._deliver()
        state = self._env.state
        if state.done:
            events.append(self._close())
            return events
        seat, observation = self._env.get_observation()
        self._seen[seat] = len(state.observations[seat])
        text = observation if isinstance(observation, str) else _format_messages(observation)
        self.pending = ActionRequired(seat=seat, observation=text)
        events.append(self.pending)
        return events

    def _deliver(self) -> list[Event]:
        """Messages added to each seat since the last call; those all seats got are public."""
        state = self._env.state
        raw: dict[int, list] = {}
        for seat in range(self.num_players):
            queued = state.observations.get(seat, [])
            raw[seat], self._seen[seat] = queued[self._seen[seat]:], len(queued)
        first = raw[0]
        if all(new == first for new in raw.values()):  # the usual case: every seat got the same messages
            public = _messages(first)
            fresh = dict.fromkeys(raw, public)
        else:
            fresh = {seat: _messages(new) for seat, new in raw.items()}
            public = self._common(fresh)
        events: list[Event] = []
        for seat, new in fresh.items():
            if new:
                self.seat_logs[seat].extend(new)
                events.append(MessagesDelivered(seat=seat, messages=new))
        if public:
            self.public_log.extend(public)
            events.append(PublicMessages(public))
        return events

    def _common(self, fresh: dict[int, list[Message]]) -> list[Message]:
        remaining = Counter(fresh[0]) if fresh else Counter()
        for seat in range(1, self.num_players):
            remaining &= Counter(fresh[seat])
        public = []
        for message in fresh.get(0, []):
            if remaining[message] > 0:
                remaining[message] -= 1
                public.append(message)
        return public

    def _close(self) -> GameOver:
        rewards, game_info = self._env.close()
        rewards = {int(s): float(r) for s, r in (rewards or {}).items()}
        reasons = [str(i.get("reason")) for i in (game_info or {}).values() if i.get("reason")]
        return self._over(Outcome(GameStatus.FINISHED, {s: rewards.get(s, 0.0) for s in range(self.num_players)},
                                  reasons[0] if reasons else "game over"))

    def _own_randomness(self) -> _GameCall:
        """Run game code with this game's random state (and the caller's guard)."""
        return _GameCall(self, self._guard())

    def numpy_generator(self) -> Any:
        """This game's `numpy.random.RandomState`, made on first use (most games never draw from numpy)."""
        if self._numpy_random is None:
            import numpy

            self._numpy_random = numpy.random.RandomState(self.seed % 2**32)
        return self._numpy_random


class _GameCall:
    """Marks one game as the one whose code runs now: `random` and `numpy.random` calls use its generators."""

    __slots__ = ("game", "guard")
    current: Game | None = None

    def __init__(self, game: Game, guard: AbstractContextManager) -> None:
        self.game, self.guard = game, guard
        _install_proxies()

    def __enter__(self) -> None:
        self.guard.__enter__()
        _GameCall.current = self.game

    def __exit__(self, *exc: object) -> None:
        _GameCall.current = None
        self.guard.__exit__(*exc)


def _module_methods(module: Any, instance: Any) -> list[str]:
    """Names of the functions `module` exports as bound methods of its hidden global `instance`."""
    return [name for name, value in vars(module).items() if getattr(value, "__self__", None) is instance]


@cache
def _install_proxies() -> None:
    """Replace the functions of `random` and `numpy.random` with stand-ins that call the running game's own
    generators, or the process's usual functions when no game code runs.

    TextArena calls `random.choice(...)` and the like through the module, so this isolates interleaved
    games as well as swapping the global state around each call would, at no cost per call."""
    import numpy

    functions = vars(random)
    for name in _module_methods(random, random._inst):
        functions[name] = _proxy(name, functions[name], lambda game: game._random)
    functions = vars(numpy.random)
    for name in [*_module_methods(numpy.random, numpy.random.mtrand._rand), "seed"]:
        functions[name] = _proxy(name, functions[name], Game.numpy_generator)


def _proxy(name: str, process_function: Callable[..., Any], generator: Callable[[Game], Any]) -> Callable[..., Any]:
    """A module function that calls `name` on the running game's generator, else the process's function."""

    @wraps(process_function)
    def call(*args: Any, **kwargs: Any) -> Any:
        game = _GameCall.current
        if game is None:
            return process_function(*args, **kwargs)
        return getattr(generator(game), name)(*args, **kwargs)

    return call
