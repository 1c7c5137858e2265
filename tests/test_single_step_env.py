"""`SingleStepEnv`: batches drawn with a local RNG, every form of answer, clear errors, verifiers and their timeout."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from arena.envs.single_step import Action, SingleStepEnv, extract_answer, verify_math

ITEMS = [{"question": f"What is {n} + {n}?", "final_answer": str(2 * n), "metadata": {"n": n}} for n in range(10)]


@dataclass
class PlainAction:
    """An action of the caller's own type: anything with `index` and `llm_response`."""

    index: int
    llm_response: str


async def started(batch_size: int = 4, seed: int = 0, **kwargs) -> tuple[SingleStepEnv, list[str]]:
    """An environment after reset, and the right answers to its batch."""
    env = SingleStepEnv(ITEMS, **kwargs)
    observations = await env.reset(batch_size, seed)
    return env, [str(2 * o.metadata["n"]) for o in observations]


async def test_reset_draws_distinct_questions_as_chat_prompts() -> None:
    env = SingleStepEnv(ITEMS, system_prompt="Answer with a number.")
    observations = await env.reset(batch_size=5, seed=3)
    assert len({o.question for o in observations}) == 5
    first = observations[0]
    assert first.messages == [{"role": "system", "content": "Answer with a number."},
                              {"role": "user", "content": first.question}]
    assert first.question == f"What is {first.metadata['n']} + {first.metadata['n']}?"


async def test_the_same_seed_draws_the_same_batch_without_touching_global_random() -> None:
    env = SingleStepEnv(ITEMS)
    random.seed(1234)
    before = random.getstate()
    batch = [o.question for o in await env.reset(4, seed=7)]
    again = [o.question for o in await env.reset(4, seed=7)]
    others = {tuple(o.question for o in await env.reset(4, seed=seed)) for seed in range(8)}
    assert random.getstate() == before
    assert batch == again
    assert len(others) > 1, "different seeds should draw different batches"


@pytest.mark.parametrize("batch_size", [0, -1, 11, "2", True])
async def test_reset_rejects_a_batch_size_the_dataset_cannot_fill(batch_size) -> None:
    with pytest.raises(ValueError, match=r"batch_size must be an integer from 1 to 10"):
        await SingleStepEnv(ITEMS).reset(batch_size)


async def test_step_before_reset_says_to_reset() -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) first"):
        await SingleStepEnv(ITEMS).step("4")


async def test_every_form_of_answer_is_scored() -> None:
    env, answers = await started(batch_size=6)
    results = await env.step(Action(index=0, llm_response=f"It is {answers[0]}."))
    results += await env.step([Action(index=1, llm_response="\\boxed{999}"), PlainAction(2, answers[2])])
    results += await env.step({3: f"#### {answers[3]}", 4: "no idea"})
    results += await env.step([{"index": 5, "llm_response": answers[5]}])
    assert [r.reward for r in results] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert [r.info["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r.info["verification"] for r in results][:2] == ["success", "failure"]
    assert all(r.done for r in results) and env.done
    assert results[1].info["response"] == "\\boxed{999}" and results[1].info["reference"] == answers[1]


async def test_a_plain_string_answers_a_batch_of_one_only() -> None:
    env, answers = await started(batch_size=1)
    [(observation, reward, done, info)] = await env.step(answers[0])
    assert (reward, done, info["index"]) == (1.0, True, 0)
    assert observation.question == info["question"]
    env, _ = await started(batch_size=2)
    with pytest.raises(ValueError, match=r"a plain string answers a batch of one; this batch has 2 items"):
        await env.step("4")


async def test_answering_part_of_a_batch_leaves_the_rest_open() -> None:
    env, answers = await started(batch_size=3)
    assert len(await env.step({1: answers[1]})) == 1
    assert not env.done
    await env.step({0: answers[0], 2: answers[2]})
    assert env.done


@pytest.mark.parametrize(("action", "message"), [
    ({7: "1", 2: "1", -1: "1"}, r"actions for indices that do not exist: \[-1, 7\] \(this batch has indices 0 to 3\)"),
    ([Action(index=1, llm_response="a"), Action(index=1, llm_response="b")], r"more than one action for indices \[1\]"),
    ([], r"no actions given"),
    ({}, r"no actions given"),
    ({"0": "4"}, r"index"),
    ({0: 4}, r"llm_response"),
])
async def test_bad_answers_are_refused_with_what_is_wrong(action, message) -> None:
    env, _ = await started()
    with pytest.raises(ValueError, match=message):
        await env.step(action)
    assert len(await env.step({i: "0" for i in range(4)})) == 4, "a refused step must answer nothing"


async def test_an_item_takes_one_answer() -> None:
    env, answers = await started()
    await env.step({2: answers[2]})
    with pytest.raises(ValueError, match=r"indices \[2\] are already answered"):
        await env.step({0: answers[0], 2: answers[2]})
    assert len(await env.step({0: answers[0], 1: answers[1], 3: answers[3]})) == 3, "nor item 0"


async def test_an_action_of_another_type_is_a_type_error() -> None:
    env, _ = await started()
    with pytest.raises(TypeError, match=r"an action is an Action .* not int"):
        await env.step(3)


class Verifiers:
    """Verifiers of every accepted shape, each scoring "right" as 1 and anything else as 0."""

    @staticmethod
    def sync_function(response: str, reference: str) -> bool:
        return verify_math(response, reference)

    @staticmethod
    async def async_function(response: str, reference: str) -> float:
        await asyncio.sleep(0)
        return float(verify_math(response, reference))

    class WithVerify:
        async def verify(self, response: str, reference: str) -> float:
            return 1.0 if verify_math(response, reference) else 0.0

    class WithVerifyBatch:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def verify_batch(self, responses: list[str], references: list[str]) -> list[bool]:
            self.calls.append(len(responses))
            return [verify_math(r, ref) for r, ref in zip(responses, references, strict=True)]


@pytest.mark.parametrize("verifier", [Verifiers.sync_function, Verifiers.async_function, Verifiers.WithVerify(),
                                      Verifiers.WithVerifyBatch()], ids=["sync", "async", "verify", "verify_batch"])
async def test_every_kind_of_verifier_scores_the_answers(verifier) -> None:
    env, answers = await started(verifier=verifier)
    results = await env.step({0: answers[0], 1: "0.5", 2: f"\\boxed{{{answers[2]}}}", 3: "?"})
    assert [r.reward for r in results] == [1.0, 0.0, 1.0, 0.0]
    if isinstance(verifier, Verifiers.WithVerifyBatch):
        assert verifier.calls == [4], "verify_batch is called once for the whole step"


def test_something_that_cannot_verify_is_refused() -> None:
    with pytest.raises(TypeError, match=r"a verifier is a callable"):
        SingleStepEnv(ITEMS, verifier="exact")


async def test_a_hanging_async_verifier_times_out_and_scores_zero() -> None:
    async def never(response: str, reference: str) -> float:
        await asyncio.sleep(3600)
        return 1.0

    env, answers = await started(batch_size=2, verifier=never, timeout=0.2)
    started_at = time.monotonic()
    results = await env.step({0: answers[0], 1: answers[1]})
    assert time.monotonic() - started_at < 2
    assert [(r.reward, r.info["verification"]) for r in results] == [(0.0, "timeout")] * 2
    assert results[0].info["error"] == "verification timed out after 0.2s"
    assert env.done


async def test_a_blocking_sync_verifier_times_out_without_blocking_the_loop() -> None:
    release = threading.Event()
    env, answers = await started(batch_size=1, verifier=lambda response, reference: release.wait(30), timeout=0.2)
    started_at = time.monotonic()
    [result] = await env.step(answers[0])
    release.set()
    assert time.monotonic() - started_at < 2
    assert (result.reward, result.info["verification"]) == (0.0, "timeout")


async def test_a_failing_verifier_scores_zero_and_says_why() -> None:
    def broken(response: str, reference: str) -> float:
        raise KeyError("judge")

    env, answers = await started(batch_size=1, verifier=broken)
    [result] = await env.step(answers[0])
    assert (result.reward, result.info["verification"]) == (0.0, "error")
    assert result.info["error"] == "verification failed: KeyError: 'judge'"
    env, answers = await started(batch_size=1, verifier=lambda response, reference: "yes")
    [result] = await env.step(answers[0])
    assert result.info["error"] == "verification failed: TypeError: the verifier returned 'yes', not a bool or a number"


class LifecycleVerifier:
    """A verifier with async setup and sync cleanup that counts both."""

    def __init__(self) -> None:
        self.setups = self.cleanups = 0

    async def setup(self) -> None:
        await asyncio.sleep(0)
        self.setups += 1

    def cleanup(self) -> None:
        self.cleanups += 1

    def verify(self, response: str, reference: str) -> bool:
        return response == reference


async def test_setup_and_close_set_the_verifier_up_and_release_it_once() -> None:
    verifier = LifecycleVerifier()
    env = SingleStepEnv(ITEMS, verifier=verifier)
    await env.setup()
    await env.setup()
    assert (env.is_setup, verifier.setups) == (True, 1)
    await env.reset(2)
    await env.close()
    await env.close()
    assert (env.is_setup, verifier.cleanups) == (False, 1)
    with pytest.raises(RuntimeError, match=r"call reset\(\) first"):
        await env.step({0: "0"})


async def test_reset_sets_the_environment_up_when_setup_was_not_awaited() -> None:
    verifier = LifecycleVerifier()
    env = SingleStepEnv(ITEMS, verifier=verifier)
    await env.reset(1)
    assert (env.is_setup, verifier.setups) == (True, 1)


def test_metadata_is_a_copy() -> None:
    env = SingleStepEnv(ITEMS, source="unit test", tags={"level": ["easy"]})
    copied = env.metadata()
    copied["tags"]["level"].append("hard")
    copied["source"] = "changed"
    assert env.metadata() == {"source": "unit test", "tags": {"level": ["easy"]}}


def write_rows(path: Path, rows: list[dict]) -> Path:
    """`rows` as a JSONL file, or a Parquet file when `path` ends in .parquet."""
    if path.suffix == ".parquet":
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    else:
        import json

        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("form", ["list", "dataset", "jsonl", "parquet"])
async def test_a_dataset_may_be_a_list_a_datasets_dataset_or_a_file(form, tmp_path) -> None:
    rows = [{"question": "What is 2 + 2?", "reference": "4", "level": "easy"}]
    if form == "dataset":
        from datasets import Dataset

        source = Dataset.from_list(rows)
    else:
        source = rows if form == "list" else write_rows(tmp_path / f"data.{form}", rows)
    env = SingleStepEnv(source)
    [observation] = await env.reset()
    assert (observation.question, observation.metadata) == ("What is 2 + 2?", {"level": "easy"})
    [result] = await env.step("\\boxed{4}")
    assert result.reward == 1.0


def test_a_dataset_without_its_columns_says_which_and_where(tmp_path) -> None:
    path = write_rows(tmp_path / "qa.jsonl", [{"prompt": "2 + 2?", "solution": "4"}])
    with pytest.raises(ValueError, match=r"qa\.jsonl is missing columns 'question', 'final_answer' or 'reference' "
                                         r"or 'answer' \(row 1 has columns: 'prompt', 'solution'\)"):
        SingleStepEnv(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.jsonl does not exist"):
        SingleStepEnv(tmp_path / "absent.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"question": "1?", "answer": "1"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2, is not valid JSON"):
        SingleStepEnv(tmp_path / "bad.jsonl")


@pytest.mark.parametrize(("text", "answer"), [
    ("So the total is \\boxed{1,200} dollars, not 5.", "1,200"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("Steps...\n#### 72", "72"),
    ("First 3 apples, then 4 more: 7 apples.", "7"),
    ("no numbers here", None),
])
def test_the_final_answer_is_boxed_or_after_hashes_or_the_last_number(text, answer) -> None:
    assert extract_answer(text) == answer


@pytest.mark.parametrize(("response", "reference", "right"), [
    ("\\boxed{1,200}", "Half is 600.\n#### 1200", True),
    ("It costs $3.50.", "3.5", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("The answer is -4.", "#### -4", True),
    ("\\boxed{18.00}", 18, True),
    ("\\boxed{17}", "#### 18", False),
    ("\\boxed{Paris}", "paris", True),
    ("I cannot tell.", "#### 18", False),
])
def test_math_answers_compare_as_numbers(response, reference, right) -> None:
    assert verify_math(response, reference) is right
