"""GRPO with TRL on an arena environment, through TRL's `rollout_func` or its `environment_factory`.

    pip install trl==1.16.0 'arena-server[vllm]'
    python examples/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --env TicTacToe-v0 --steps 100
    python examples/trl_grpo.py --model Qwen/Qwen3-0.6B --math gsm8k --mode environment_factory

`rollout_func` (default) plays whole episodes with the trainer's colocated vLLM engine (or `--policy`, any agent
spec) and trains on their token sequences, the environment's tokens masked out. `environment_factory` lets TRL
generate, the model playing each move by calling the `act` tool: it needs a model whose chat template has tools.
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

    return TextArenaMultistepEnv(args.env, max_steps_per_episode=args.max_steps or 20, opponent=args.opponent)


def make_trainer(args: argparse.Namespace, env: MultistepEnv) -> object:
    """A `GRPOTrainer` on `env`'s dataset, fed by the adapter `--mode` names."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from arena.envs.trl import environment_factory, reward_funcs, rollout_func

    use_vllm = args.policy is None and not args.no_vllm  # rollout_func plays with TRL's engine unless --policy
    config = GRPOConfig(output_dir=args.output_dir, max_steps=args.steps, num_generations=args.num_generations,
                        per_device_train_batch_size=args.num_generations, learning_rate=args.learning_rate,
                        use_vllm=use_vllm, vllm_mode="colocate", logging_steps=1, report_to="none",
                        use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available())
    dataset = env.get_dataset(args.episodes)
    if args.mode == "environment_factory":
        return GRPOTrainer(model=args.model, args=config, train_dataset=dataset,
                           environment_factory=environment_factory(env))
    return GRPOTrainer(model=args.model, reward_funcs=reward_funcs(env), args=config, train_dataset=dataset,
                       rollout_func=rollout_func(env, args.policy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model to train: a Hugging Face id or folder")
    parser.add_argument("--env", default="TicTacToe-v0", help="the TextArena game (default TicTacToe-v0)")
    parser.add_argument("--math", help="train on math problems instead: 'gsm8k' or a JSONL/Parquet file")
    parser.add_argument("--mode", choices=["rollout_func", "environment_factory"], default="rollout_func")
    parser.add_argument("--policy", help="rollout_func: play with this agent spec, not the trainer's vLLM engine")
    parser.add_argument("--no-vllm", action="store_true", help="generate with transformers, not vLLM")
    parser.add_argument("--opponent", default="random", help="the game's other seats (default random)")
    parser.add_argument("--max-steps", type=int, help="the policy's moves per episode (default 20; 3 for math)")
    parser.add_argument("--episodes", type=int, default=256, help="dataset rows: tasks, each seat in turn")
    parser.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    parser.add_argument("--num-generations", type=int, default=8, help="episodes per task, GRPO's group (default 8)")
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--output-dir", default="grpo-arena", help="checkpoints (default ./grpo-arena)")
    args = parser.parse_args()

    make_trainer(args, make_env(args)).train()


if __name__ == "__main__":
    main()
