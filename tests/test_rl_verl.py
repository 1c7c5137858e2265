"""The verl adapter against verl 0.7 itself: its interaction registry, its RL dataset, its agent loop's calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from rl_helpers import RIGHT, WRONG, write_math_file

from arena.envs.verl import ArenaInteraction, GenericEnvironment, InteractionSpec

base = pytest.importorskip("verl.interactions.base", reason="needs verl 0.7 (0.8 removed interactions), which pins "
                                                            "numpy<2 and so cannot join .venv-vllm")


@pytest.fixture
def written(tmp_path: Path) -> tuple[GenericEnvironment, Path, Path]:
    config = {"env": "arena.envs.math_env.MathEnv", "env_kwargs": {"dataset_name": str(write_math_file(tmp_path))}}
    environment = GenericEnvironment({"num_episodes": 2}, [InteractionSpec("math", config=config)])
    return environment, *environment.write(tmp_path / "data")


def test_verl_builds_our_interaction_from_the_yaml_we_write(written: tuple[GenericEnvironment, Path, Path]) -> None:
    from verl.interactions.utils.interaction_registry import initialize_interactions_from_config

    interactions = initialize_interactions_from_config(str(written[2]))
    assert isinstance(interactions["math"], ArenaInteraction)
    assert isinstance(interactions["math"], base.BaseInteraction)


async def test_verls_dataset_rows_drive_an_episode_as_its_tool_agent_loop_does(
        written: tuple[GenericEnvironment, Path, Path], tmp_path: Path) -> None:
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    environment, data, _ = written
    dataset = RLHFDataset(str(data), None, OmegaConf.create({"filter_overlong_prompts": False,
                                                             "cache_dir": str(tmp_path / "cache")}))
    item = dataset[1]
    assert item["raw_prompt"] == environment.rows[1]["prompt"] and item["agent_name"] == "tool_agent"
    kwargs = item["interaction_kwargs"]
    interaction = environment.interactions[kwargs["name"]]

    request = await interaction.start_interaction("request", **kwargs)  # ToolAgentLoop.run
    messages = [*item["raw_prompt"], {"role": "assistant", "content": WRONG}]
    assert (await interaction.generate_response(request, messages, **kwargs))[0] is False
    messages.append({"role": "assistant", "content": RIGHT})
    done, _, score, _ = await interaction.generate_response(request, messages, **kwargs)
    assert (done, score) == (True, 0.5)
