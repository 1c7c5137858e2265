"""Output tokens/s of `vllm:` agents playing concurrent games, against vLLM's own offline `generate`.

- arena: --games TicTacToe-v0 games at once through the runner, a `vllm:` agent on both seats (one
  shared in-process async engine), recorded in SQLite; output tokens/s over the whole run.
- reference: the same prompts (re-tokenized from the stored turns, cut exactly as the agent cut them)
  with the same sampling settings, given to `vllm.LLM.generate` in batches of --games prompts, the
  number of requests the games keep in flight; output tokens/s over the generate calls.
Target: the arena at least 0.7 of the reference's rate. Needs vLLM (`make test` builds `.venv-vllm`).
Default model: Gemma 3 270M converted from PyPI's GGUF; on a GPU machine pass --model.
Run: .venv-vllm/bin/python benchmarks/vllm_throughput.py [--games 32] [--max-tokens 16] [--model M]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass

from sqlalchemy import select

from agents.vllm_agent import VLLMAgent
from arena.play import Arena, GameSpec
from arena.store.models import TurnRow

TARGET_RATIO = 0.7


@dataclass
class ArenaRun:
    """What the games produced: the prompts as sent, output tokens, and the time taken."""

    prompts: list[list[int]]
    output_tokens: int
    seconds: float
    model: str
    engine_options: dict
    sampling: dict


async def arena_games(args: argparse.Namespace) -> ArenaRun:
    """Play every game at once with `vllm:` agents on both seats and read back what was sent."""
    spec = f"vllm{':' + args.model if args.model else ''}?max_tokens={args.max_tokens}&temperature=0.7"
    names = [f"{n}={spec}" for n in ("a", "b")]
    async with Arena(f"sqlite:///{tempfile.mkdtemp(prefix='arena-bench-vllm-')}/bench.db") as arena:
        agents: list[VLLMAgent] = [(await arena.seat(name)).agent for name in names]  # started before the clock
        started = time.perf_counter()
        await arena.play_all([GameSpec("TicTacToe-v0", seed, names) for seed in range(args.games)], args.games)
        seconds = time.perf_counter() - started
        infos = arena.read(lambda session: [t.info for t in session.scalars(select(TurnRow).order_by(TurnRow.id))
                                            if t.info])
        prompts = [agents[0].prompt_tokens(info["prompt"]) for info in infos]
        run = ArenaRun(prompts, sum(i["completion_tokens"] for i in infos), seconds, agents[0].engine_model,
                       agents[0].engine_options, dict(agents[0].sampling))
    return run


def reference_generate(run: ArenaRun, batch: int) -> tuple[int, float]:
    """(output tokens, seconds) for vLLM's offline `generate` on the same prompts, `batch` at a time."""
    from vllm import LLM, SamplingParams, TokensPrompt

    from agents.vllm_agent import engine_arguments

    llm = LLM(**engine_arguments(run.model, run.engine_options))
    params = SamplingParams(**run.sampling)
    llm.generate([TokensPrompt(prompt_token_ids=run.prompts[0])], params, use_tqdm=False)  # warm-up, untimed
    tokens, started = 0, time.perf_counter()
    for first in range(0, len(run.prompts), batch):
        chunk = [TokensPrompt(prompt_token_ids=p) for p in run.prompts[first:first + batch]]
        outputs = llm.generate(chunk, params, use_tqdm=False)
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    return tokens, time.perf_counter() - started


def main() -> None:
    """Run both sides and print their rates and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=32, help="simultaneous games")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens per move")
    parser.add_argument("--model", default="", help="model for vLLM (default: Gemma 3 270M from PyPI's GGUF)")
    args = parser.parse_args()
    run = asyncio.run(arena_games(args))
    arena_rate = run.output_tokens / run.seconds
    print(f"arena: {args.games} games, {len(run.prompts)} moves, {run.output_tokens} output tokens "
          f"in {run.seconds:.1f} s: {arena_rate:.1f} output tokens/s", flush=True)
    tokens, seconds = reference_generate(run, args.games)
    reference_rate = tokens / seconds
    print(f"vLLM offline generate, same prompts and sampling ({run.sampling}), batches of {args.games}: "
          f"{tokens} output tokens in {seconds:.1f} s: {reference_rate:.1f} output tokens/s")
    ratio = arena_rate / reference_rate
    print(f"ratio arena / vLLM offline: {ratio:.2f} (target >= {TARGET_RATIO}: "
          f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})")


if __name__ == "__main__":
    main()
