"""Write verl's training rows and interaction config for the arena games of `verl_interaction.yaml`.

    pip install 'verl==0.7.1'               # the last verl with interactions
    python examples/verl_interaction.py --out ~/data/arena --episodes 512 --model Qwen/Qwen2.5-0.5B-Instruct

It writes OUT/train.parquet (one row per episode and seat: the first prompt, and the task in
extra_info.interaction_kwargs) and OUT/interaction_config.yaml, then prints a verl command line to start from:
GRPO, multi-turn rollouts whose user turns come from ArenaInteraction, and `compute_score` reading the
episode's reward from the interaction's last turn score.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

import arena.envs.verl
from arena.envs.verl import DataConfig, GenericEnvironment, InteractionSpec

COMMAND = """python3 -m verl.trainer.main_ppo \\
    algorithm.adv_estimator=grpo \\
    data.train_files={data} data.val_files={data} data.return_raw_chat=True \\
    data.train_batch_size=64 data.max_prompt_length=1024 data.max_response_length=4096 \\
    actor_rollout_ref.model.path={model} \\
    actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n=8 \\
    actor_rollout_ref.rollout.multi_turn.enable=True \\
    actor_rollout_ref.rollout.multi_turn.max_user_turns={turns} \\
    actor_rollout_ref.rollout.multi_turn.interaction_config_path={config} \\
    reward.custom_reward_function.path={reward} reward.custom_reward_function.name=compute_score"""


def read_specs(path: Path) -> list[InteractionSpec]:
    """The interactions of a verl interaction YAML."""
    entries = yaml.safe_load(path.read_text())["interaction"]
    return [InteractionSpec(e["name"], e["class_name"], dict(e.get("config") or {})) for e in entries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).with_name("verl_interaction.yaml"))
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the rows and config to")
    parser.add_argument("--episodes", type=int, default=256, help="rows per interaction (default 256)")
    parser.add_argument("--model", default="Qwen/Qwen2.5-0.5B-Instruct", help="the model, for the command line")
    args = parser.parse_args()

    environment = GenericEnvironment(DataConfig(num_episodes=args.episodes, shuffle=True), read_specs(args.config))
    data, config = environment.write(args.out.expanduser())
    turns = max(i.env.max_steps_per_episode for i in environment.interactions.values())  # let the env end episodes
    print(f"{len(environment)} rows in {data}; interactions in {config}\n")
    print(COMMAND.format(data=data, config=config, model=args.model, turns=turns,
                         reward=Path(arena.envs.verl.__file__).resolve()))


if __name__ == "__main__":
    main()
