"""`TextArenaMultistepEnv`: any playable game of the catalog as a multi-step RL environment.

The policy sits in one seat (or every seat, with `opponent="self"`); the other seats are arena agents.
Rollouts run through the library API (`arena.play.Arena`), so with `record=URL` every rollout is stored
and rated like any other game, and LLM requests from all games are in flight together.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import trueskill
from sqlalchemy.orm import Session

from agents.base import Agent, Decision, TurnContext
from agents.specs import AgentSpec, parse_spec
from arena.engine import InvalidMovePolicy
from arena.envs.base import EpisodeState, MultistepEnv, RewardFunction
from arena.envs.episode import Episode, Outcome, Step, Trajectory
from arena.envs.policy import PolicyLike, TokenizerLike, as_policy, run_policy
from arena.envs.rewards import (
    NEEDS_RATINGS,
    RewardMode,
    RoleBaseline,
    move_format,
    outcome_of,
    outcome_reward,
    parse_reward_mode,
    ratings_before,
    surprise_reward,
    trueskill_reward,
)
from arena.envs.tokens import TokenChat
from arena.play import Arena, GameResult, GameSpec, SeatLike
from arena.prompting import Conversation, extract_action, system_prompt
from arena.ratings import RatingChange
from arena.runner import Match, MatchResult, Seat
from arena.store import ratings as rating_rows
from arena.store.database import open_database
from games import catalog

TURN_LIMIT = "turn limit"  # the engine's reason when a game is cut short
OpponentLike = str | Sequence[str]


class PolicySeat(Agent):
    """The policy in a game seat: shows it the observation, keeps each seat's token-faithful conversation."""

    def __init__(self, name: str, agent: Agent, system_template: str | None, tokenizer: TokenizerLike) -> None:
        self.agent, self.name = agent, name
        self.system_template, self.tokenizer = system_template, tokenizer or getattr(agent, "tokenizer", None)
        self.chats: dict[tuple[str, int], TokenChat] = {}
        self.steps: dict[tuple[str, int], list[Step]] = {}

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Ask the policy, and remember the exchange for the seat's trajectory."""
        key = (context.game_key, context.seat)
        chat = self.chats.get(key)
        if chat is None:
            prompt = system_prompt(context.env_id, context.seat, self.system_template)
            chat = self.chats[key] = TokenChat(prompt, self.tokenizer)
            self.steps[key] = []
        generation = await run_policy(self.agent, chat, observation, context)
        self.steps[key].append(Step(context.turn, observation, generation.text, generation.action))
        return Decision(generation.action, generation.info)

    def take(self, game_key: str, seat: int) -> tuple[TokenChat, list[Step]]:
        """The conversation and steps of one seat of a finished game (forgotten here)."""
        chat = self.chats.pop((game_key, seat), None) or TokenChat("", None)
        return chat, self.steps.pop((game_key, seat), [])


class WaitingSeat(Agent):
    """The policy's seat in a trainer-driven episode: each move waits for `step` to bring the action."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.turns: asyncio.Queue[str] = asyncio.Queue()
        self.seat = 0  # the seat of the turn waiting
        self.actions: asyncio.Queue[str] = asyncio.Queue()

    async def decide(self, observation: str, context: TurnContext) -> Decision:
        """Hand the observation to the trainer and wait for its action."""
        self.seat = context.seat
        self.turns.put_nowait(observation)
        return Decision(await self.actions.get())


Started = tuple[WaitingSeat, "asyncio.Task[MatchResult]", list[str]]  # a trainer-driven game: seat, game, names


class TextArenaMultistepEnv(MultistepEnv):
    """A TextArena game for one policy against arena agents, itself (`"self"`), or the database's pool."""

    def __init__(self, env_id: str, max_steps_per_episode: int = 50, system_prompt: str | None = None,
                 opponent: OpponentLike = "random", num_players: int = 2, reward_mode: str = "outcome",
                 invalid_move_penalty: float = 0.0, baseline: RoleBaseline | None = None,
                 tokenizer: TokenizerLike = None, seed: int = 0, record: str | None = None,
                 invalid_moves: str = "textarena", num_tasks: int = 1000, name: str = "policy") -> None:
        super().__init__(max_steps_per_episode, system_prompt, tokenizer, seed)
        catalog.require_playable(env_id, num_players)
        self.env_id, self.num_players, self.record, self.name = env_id, num_players, record, name
        self.mode, self.penalty, self.baseline = parse_reward_mode(reward_mode), invalid_move_penalty, baseline
        self.opponent, self.num_tasks = _opponents(opponent), num_tasks
        self.invalid_moves = InvalidMovePolicy.parse(invalid_moves)
        self._check_ratings(record)
        self._arena: Arena | None = None
        self._matches: dict[str, tuple[WaitingSeat, asyncio.Task[MatchResult]]] = {}

    def _check_ratings(self, record: str | None) -> None:
        """Reward modes and opponents that need ratings need a database of rated games."""
        needs = [f"reward_mode='{self.mode}'"] if self.mode in NEEDS_RATINGS else []
        needs += ["opponent='pool'"] if self.opponent == "pool" else []
        if needs and record is None:
            raise ValueError(f"{' and '.join(needs)} need the arena database's ratings: pass record='sqlite:///…'")
        if self.mode in NEEDS_RATINGS and self.opponent == "self":
            raise ValueError(f"reward_mode='{self.mode}' needs rated games, and self-play is not rated: "
                             "use reward_mode='outcome' or real opponents")

    # --- tasks ----------------------------------------------------------------------------

    def _create_task_dataset(self) -> list[dict[str, Any]]:
        return [self.task(i) for i in range(self.num_tasks)]

    def task(self, index: int) -> dict[str, Any]:
        """Task `index`: the game's seed and the policy's seat (every seat in turn)."""
        return {"env_id": self.env_id, "seed": self.seed + index, "seat": index % self.num_players, "index": index}

    def prompt_row(self, task_info: dict[str, Any]) -> dict[str, Any]:
        """The first chat the task's seat is shown (after its opponents' opening moves), and the task's fields."""
        return self.get_dataset(tasks=[task_info])[0]

    def get_dataset(self, num_episodes: int | None = None, tasks: Sequence[dict[str, Any]] | None = None) -> Any:
        """A `datasets.Dataset` of first prompts (the opponents' opening moves played, nothing recorded) and tasks."""
        from datasets import Dataset

        from arena.envs.bridge import run_sync

        tasks = list(tasks or [self.task(i) for i in range(num_episodes or self.num_tasks)])
        openings = run_sync(self._openings(tasks))
        return Dataset.from_list([{"prompt": Conversation(self._system_prompt(task), growing=True).prompt(opening),
                                   **task} for task, opening in zip(tasks, openings, strict=True)])

    async def _openings(self, tasks: Sequence[dict[str, Any]]) -> list[str]:
        """The first observation of each task's seat, in an arena that records nothing."""
        async with self._open_arena(None) as arena:
            started = [await self._start(arena, task) for task in tasks]
            try:
                return [await _next_turn(waiting, match) or "" for waiting, match, _ in started]
            finally:
                for _, match, _ in started:
                    match.cancel()
                await asyncio.gather(*[match for _, match, _ in started], return_exceptions=True)

    def get_rubric(self) -> list[RewardFunction]:
        """TRL reward functions of a completion alone: `move_format` (the episode reward comes with the rollout)."""
        return [move_format]

    def _system_prompt(self, task_info: dict[str, Any]) -> str:
        return system_prompt(self.env_id, task_info["seat"], self.system_prompt)

    # --- policy-driven rollouts -----------------------------------------------------------

    async def rollout(self, policy: PolicyLike, n: int, concurrency: int = 64, group_size: int = 1,
                      record: str | None = None, tasks: Sequence[dict[str, Any]] | None = None) -> list[Episode]:
        """Play `n` games with `policy`, `concurrency` at once; groups of `group_size` share a seed, seat and
        opponents, and group g plays `tasks[g]` when given, else task g. With `record` (or the env's), every
        game is stored and rated in that database."""
        record = record if record is not None else self.record
        self._check_ratings(record)
        group_size = max(1, group_size)
        handle = await as_policy(policy)
        seat = PolicySeat(self.name, handle.agent, self.system_prompt, self.tokenizer)
        groups = range(-(-n // group_size))
        chosen = [tasks[g] if tasks else self.task(g) for g in groups]
        try:
            async with self._open_arena(record) as arena:
                opponents = await self._draw_opponents(arena, groups)
                specs = [self._game(seat, chosen[i // group_size], opponents[i // group_size]) for i in range(n)]
                results = await arena.play_all(specs, concurrency)
        finally:
            await handle.close()
        return [self._episode(r, i // group_size, chosen[i // group_size], seat, record is not None)
                for i, r in enumerate(results)]

    def _open_arena(self, record: str | None) -> Arena:
        return Arena(record, record=record is not None, policy=self.invalid_moves, move_timeout=None,
                     max_turns=self.max_steps_per_episode * self.num_players, keep_turns=True)

    def _game(self, policy: Agent, task: dict[str, Any], opponents: list[SeatLike]) -> GameSpec:
        """The game of one episode: the task's seed, the policy in the task's seat, the opponents in the others."""
        others = iter(opponents)
        seats = [policy if self.opponent == "self" or s == task["seat"] else next(others)
                 for s in range(self.num_players)]
        return GameSpec(self.env_id, task["seed"], seats, ("rl:rollout",))

    async def _draw_opponents(self, arena: Arena, groups: Sequence[int]) -> list[list[SeatLike]]:
        """The opponents of each group: the spec, the reference agents in turn, or a draw from the pool."""
        others = self.num_players - 1
        if self.opponent == "self":
            return [[] for _ in groups]
        if self.opponent == "pool":
            pool = await asyncio.to_thread(self._read_pool, arena)
            return [self._draw(pool, group, others) for group in groups]
        refs = self.opponent
        return [[refs[(group + k) % len(refs)] for k in range(others)] for group in groups]

    def _read_pool(self, arena: Arena) -> list[tuple[AgentSpec, float]]:
        """The pool, read from the arena's database, or from `record` for an arena that records nothing."""
        if arena.record:
            return arena.read(self._pool)
        engine = open_database(self.record)
        try:
            with Session(engine) as session:
                return self._pool(session)
        finally:
            engine.dispose()

    def _pool(self, session: Session) -> list[tuple[AgentSpec, float]]:
        """Rated agents of this env the arena can rebuild, each with its match quality against the policy."""
        from agents.specs import BUILDERS

        rated = rating_rows.rated_agents(session, self.env_id)
        mine = next((trueskill.Rating(a.mu, a.sigma) for a in rated if a.name == self.name), trueskill.Rating())
        pool = [(parse_spec(f"{a.name}={a.spec}"), trueskill.quality_1vs1(mine, trueskill.Rating(a.mu, a.sigma)))
                for a in rated if a.name != self.name and a.kind in BUILDERS and a.spec]
        if not pool:
            raise ValueError(f"opponent='pool': the arena database has no rated agents for {self.env_id} "
                             "that can play here; rate some first (arena play or a tournament)")
        return pool

    def _draw(self, pool: list[tuple[AgentSpec, float]], group: int, count: int) -> list[SeatLike]:
        """`count` opponents for a group, drawn with weights by match quality (seeded by the env and group)."""
        rng = random.Random(f"{self.seed}:{group}")
        return rng.choices([spec for spec, _ in pool], weights=[q for _, q in pool], k=count)

    def _episode(self, result: GameResult, group: int, task: dict[str, Any], policy: PolicySeat,
                 recorded: bool) -> Episode:
        """The trajectories of the policy's seats in one played game, with their rewards."""
        seats = range(self.num_players) if self.opponent == "self" else [task["seat"]]
        trajectories = [self._trajectory(result, group, policy, s) for s in seats]
        episode_id = result.episode_id if recorded else None
        for trajectory in trajectories:
            trajectory.episode_id = episode_id
        return Episode(result.index, group, result.env_id, result.seed, result.agents, result.outcome.status,
                       result.outcome.reason, result.outcome.rewards, trajectories, episode_id)

    def _trajectory(self, result: GameResult, group: int, policy: PolicySeat, seat: int) -> Trajectory:
        """One seat's trajectory: its conversation and tokens, its steps marked from the turn log, its reward."""
        chat, steps = policy.take(str(result.episode_id), seat)
        turns = {t.index: t for t in result.log}
        for step in steps:
            turn = turns.get(step.turn)
            step.invalid, step.error = bool(turn and turn.invalid), turn.error if turn else None
            step.reward = -self.penalty if step.invalid else 0.0
        trajectory = Trajectory(result.env_id, result.seed, seat, group, policy.name, [], steps)
        chat.fill(trajectory)
        outcome = result.outcome
        trajectory.outcome = self._outcome(outcome.status, outcome.rewards, outcome.reason, seat)
        trajectory.reason = outcome.reason
        trajectory.raw_reward = self._reward(trajectory.outcome, seat, sum(trajectory.turn_rewards), outcome.rewards,
                                             result.rating_changes, result.agents)
        trajectory.reward = (self.baseline.advantage(result.env_id, seat, trajectory.raw_reward)
                             if self.baseline else trajectory.raw_reward)
        trajectory.info["completion_tokens"] = sum(t.info.get("completion_tokens") or 0 for t in result.log
                                                   if t.seat == seat)
        return trajectory

    @staticmethod
    def _outcome(status: str, rewards: dict[int, float], reason: str, seat: int) -> Outcome:
        """Win, draw or loss; truncated when the step limit stopped the game; else aborted."""
        if status != "finished":
            return "truncated" if reason.startswith(TURN_LIMIT) else "aborted"
        return outcome_of(rewards, seat)

    def _reward(self, outcome: Outcome, seat: int, penalties: float, rewards: dict[int, float],
                changes: Sequence[RatingChange], agents: Sequence[str]) -> float:
        """The reward mode's value for one seat of a game, plus its per-step penalties (0 when unfinished)."""
        if outcome not in ("win", "draw", "loss"):
            return penalties
        if self.mode == RewardMode.TRUESKILL:
            return trueskill_reward(changes, agents[seat], self.env_id) + penalties
        if self.mode == RewardMode.SURPRISE:
            return surprise_reward(rewards, seat, ratings_before(changes, agents, self.env_id)) + penalties
        return outcome_reward(outcome) + penalties

    # --- trainer-driven episodes ----------------------------------------------------------

    async def _initialize_episode(self, session_id: str, task_info: dict[str, Any]) -> EpisodeState:
        """Start the game in the background; the policy's seat waits for `step`."""
        if self._arena is None:
            self._arena = await self._open_arena(self.record).__aenter__()
        waiting, match, agents = await self._start(self._arena, task_info)
        self._matches[session_id] = (waiting, match)
        state = EpisodeState(session_id, task_info)
        state.info["agents"] = agents
        return await self._advance(state)

    async def _start(self, arena: Arena, task: dict[str, Any]) -> Started:
        """Start `task`'s game in `arena` with a waiting seat for the policy: (seat, game, agent names)."""
        waiting = WaitingSeat(self.name)
        [opponents] = await self._draw_opponents(arena, [task.get("index", 0)])
        spec = self._game(waiting, task, opponents)
        seats = [Seat(who, (await arena.seat(who)).agent_id) if who is waiting else await arena.seat(who)
                 for who in spec.seats]  # a new waiting seat per episode, under the policy's one name
        match = Match(spec.env_id, spec.seed, seats, self.invalid_moves, None, spec.tags,
                      self.max_steps_per_episode * self.num_players)
        return waiting, asyncio.create_task(arena.play_match(match)), [s.agent.name for s in seats]

    async def _step_episode(self, session_id: str, state: EpisodeState, llm_action: str) -> EpisodeState:
        """Play the move read from the policy's reply; return when the policy must move again or the game ended."""
        waiting, _ = self._matches[session_id]
        waiting.actions.put_nowait(extract_action(llm_action).action or llm_action.strip()[:500])
        return await self._advance(state)

    async def _advance(self, state: EpisodeState) -> EpisodeState:
        """Wait for the policy's next turn or the end of the game."""
        waiting, match = self._matches[state.session_id]
        turn = await _next_turn(waiting, match)
        if turn is not None:
            state.observation, state.info["seat"] = turn, waiting.seat
            return state
        result = match.result()
        seat = state.task["seat"]
        state.done = True
        state.outcome = self._outcome(result.outcome.status, result.outcome.rewards, result.outcome.reason, seat)
        invalid = sum(t.invalid for t in result.log if t.seat == seat)
        state.step_rewards = [-self.penalty if t.invalid else 0.0 for t in result.log if t.seat == seat]
        state.info.update(episode_id=result.episode_id if self.record else None, rewards=result.outcome.rewards,
                          reason=result.outcome.reason, rating_changes=result.rating_changes, invalid=invalid)
        return state

    def _calculate_reward(self, state: EpisodeState, llm_actions: list[str], final_action: str) -> float:
        """The reward mode's value for the policy's seat (penalties only when the game did not finish)."""
        info = state.info
        return self._reward(state.outcome or "aborted", state.task["seat"], sum(state.step_rewards),
                            info.get("rewards", {}), info.get("rating_changes", []), info["agents"])

    async def _close_episode(self, session_id: str, state: EpisodeState) -> None:
        """Stop the game if it still runs (it is stored aborted)."""
        _, match = self._matches.pop(session_id, (None, None))
        if match is not None and not match.done():
            match.cancel()
            await asyncio.gather(match, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop running episodes and close the arena trainer-driven episodes play in."""
        for session_id in list(self._matches):
            await self.finalize(session_id)
        if self._arena is not None:
            await self._arena.close()
            self._arena = None


def _opponents(opponent: OpponentLike) -> str | list[str]:
    """'self', 'pool', or the list of reference agent specs (each checked now)."""
    if opponent in ("self", "pool"):
        return opponent  # type: ignore[return-value]
    specs = [opponent] if isinstance(opponent, str) else list(opponent)
    if not specs:
        raise ValueError("opponent: give an agent spec, a list of them, 'self' or 'pool'")
    for spec in specs:
        parse_spec(spec)
    return specs


async def _next_turn(waiting: WaitingSeat, match: asyncio.Task) -> str | None:
    """The next observation the waiting seat must answer, or None when the game ended first."""
    turn = asyncio.ensure_future(waiting.turns.get())
    await asyncio.wait([turn, match], return_when=asyncio.FIRST_COMPLETED)
    if turn.done():
        return turn.result()
    turn.cancel()
    return None
