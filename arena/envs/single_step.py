"""`SingleStepEnv`: batches of one-answer episodes (a question, a reference, a verifier), after CAMEL's.

Also what `MathEnv` shares with it: reading a dataset (a list of dicts, a `datasets.Dataset`, a JSONL or
Parquet file) and checking a math answer against a reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from arena.prompting import Conversation

# --- datasets -------------------------------------------------------------------------------

DatasetLike = Any  # a list of dicts, a `datasets.Dataset` (any iterable of mappings), or a JSONL / Parquet path


def load_rows(source: DatasetLike, columns: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The rows of `source` with each column of `columns` renamed to its key (from the first accepted name a row
    has); ValueError names the missing columns and the source."""
    rows, where = _read_rows(source)
    if not rows:
        raise ValueError(f"{where} has no rows")
    return [_renamed(row, columns, where, number) for number, row in enumerate(rows, 1)]


def _read_rows(source: DatasetLike) -> tuple[list[dict[str, Any]], str]:
    """(the rows, how errors name the source)."""
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        return _read_file(path), f"dataset file {path}"
    if isinstance(source, Mapping) or not isinstance(source, Iterable):
        raise TypeError("a dataset is a list of dicts, a datasets.Dataset or a JSONL/Parquet file path, "
                        f"not {type(source).__name__}")
    rows = list(source)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise TypeError(f"dataset row {number} is a {type(row).__name__}, not a dict")
    return [dict(row) for row in rows], "dataset"


def _read_file(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL or Parquet file."""
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow
        import pyarrow.parquet

        try:
            return pyarrow.parquet.read_table(path).to_pylist()
        except pyarrow.ArrowException as error:
            raise ValueError(f"dataset file {path} is not valid Parquet: {error}") from error
    if path.suffix in (".jsonl", ".ndjson"):
        lines = path.read_text(encoding="utf-8").splitlines()
        return [_json_row(line, path, number) for number, line in enumerate(lines, 1) if line.strip()]
    raise ValueError(f"dataset file {path} must be JSON Lines (.jsonl) or Parquet (.parquet)")


def _json_row(line: str, path: Path, number: int) -> dict[str, Any]:
    """One JSONL line as a row."""
    try:
        row = json.loads(line)
    except ValueError as error:
        raise ValueError(f"dataset file {path}, line {number}, is not valid JSON: {error}") from error
    if not isinstance(row, dict):
        raise ValueError(f"dataset file {path}, line {number}, is not a JSON object")
    return row


def _renamed(row: dict[str, Any], columns: Mapping[str, Sequence[str]], where: str, number: int) -> dict[str, Any]:
    """`row` with the first present name of each column renamed to the column's key."""
    used = {key: next((name for name in names if name in row), None) for key, names in columns.items()}
    missing = [" or ".join(repr(name) for name in columns[key]) for key, name in used.items() if name is None]
    if missing:
        has = ", ".join(repr(name) for name in row) or "none"
        raise ValueError(f"{where} is missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
                         f"(row {number} has columns: {has})")
    rest = {name: value for name, value in row.items() if name not in used.values()}
    return {**rest, **{key: row[name] for key, name in used.items()}}


# --- math answers ---------------------------------------------------------------------------

_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?:(?<![\w.])-)?\.\d+")
_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")
_NOISE = re.compile(r"\\[!,;]|\\?\$|\\?%|\\text\{[^{}]*\}")


def extract_answer(text: str) -> str | None:
    """The final answer in a completion or a solution: the last \\boxed{}, else what follows the last ####, else
    the last number; None when there is none."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip() or None
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for position in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth < 0:
            return text[begin:position]
    return None


def parse_number(answer: str) -> Fraction | None:
    """The last number in an answer, exactly ("1,200", "$3.50", "\\frac{1}{2}", "-4"), or None."""
    numbers = _NUMBER.findall(_FRAC.sub(r"\1/\2", _NOISE.sub("", answer)))
    try:
        return Fraction(numbers[-1].replace(",", "")) if numbers else None
    except ZeroDivisionError:
        return None


def verify_math(response: str, reference: Any) -> bool:
    """Whether `response`'s final answer equals `reference`'s (a solution ending in #### N, or the answer itself):
    numbers compare exactly after normalising (18 == 18.00 == 18/1), anything else as lowercase text."""
    given, expected = extract_answer(str(response)), extract_answer(str(reference)) or str(reference).strip()
    if given is None or not expected:
        return False
    numbers = parse_number(given), parse_number(expected)
    if None not in numbers:
        return numbers[0] == numbers[1]
    return _plain(given) == _plain(expected)


def _plain(answer: str) -> str:
    """An answer as lowercase text without spaces, dollar signs or a final full stop."""
    return re.sub(r"\s+", "", answer).strip("$").rstrip(".").lower()


# --- the environment ------------------------------------------------------------------------

class Action(BaseModel):
    """One answer: the index of the batch item it answers, and the model's response."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(strict=True)
    llm_response: str = Field(strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """What the policy sees of one item: the question, as chat messages too, and the item's metadata."""

    question: str
    messages: list[dict[str, str]]
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepResult(NamedTuple):
    """One answered item: its observation (unchanged: the episode is over), reward, done, and details."""

    observation: Observation
    reward: float
    done: bool
    info: dict[str, Any]


Verification = Literal["success", "failure", "timeout", "error"]
ActionLike = Any  # an Action (or any object with index and llm_response), a list of them, {index: str}, or a str
VerifierLike = Any  # (response, reference) -> float | bool, sync or async, or an object with verify / verify_batch


@dataclass(frozen=True)
class Verdict:
    """A verification: the score, how it went, and the error when it failed."""

    score: float
    status: Verification
    error: str | None = None


ITEM_COLUMNS = {"question": ("question",), "final_answer": ("final_answer", "reference", "answer")}


class SingleStepEnv:
    """Batches of single-step episodes: sample questions, take one answer per item, score it with the verifier.

    `setup`, `close`, `reset` and `step` are coroutines, as in CAMEL: a verifier may be async (a sandbox, a judge
    model), and each verification is bounded by `timeout` seconds. Unlike CAMEL, `reset` and `step` always
    return lists, also for a batch of one."""

    def __init__(self, dataset: DatasetLike, verifier: VerifierLike = verify_math, timeout: float | None = 180.0,
                 system_prompt: str | None = None, **metadata: Any) -> None:
        if not (callable(verifier) or hasattr(verifier, "verify") or hasattr(verifier, "verify_batch")):
            raise TypeError("a verifier is a callable (response, reference) -> score, or an object with verify() "
                            f"or verify_batch(), not {type(verifier).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        self.items = [_item(row) for row in load_rows(dataset, ITEM_COLUMNS)]
        self.verifier, self.timeout, self.system_prompt = verifier, timeout, system_prompt
        self.is_setup = False
        self._metadata = metadata
        self._batch: list[dict[str, Any]] = []
        self._observations: list[Observation] = []
        self._answered: list[bool] = []

    @property
    def done(self) -> bool:
        """Whether every item of the current batch is answered."""
        return bool(self._batch) and all(self._answered)

    def metadata(self) -> dict[str, Any]:
        """A deep copy of the keyword arguments the environment was made with."""
        return copy.deepcopy(self._metadata)

    async def setup(self) -> None:
        """Set the verifier up (its `setup()`, when it has one); again is a no-op."""
        if not self.is_setup:
            await _call_hook(self.verifier, "setup")
            self.is_setup = True

    async def close(self) -> None:
        """Drop the batch and release the verifier (its `cleanup()` or `close()`, when it has one)."""
        self._batch, self._observations, self._answered = [], [], []
        if self.is_setup:
            self.is_setup = False
            await _call_hook(self.verifier, "cleanup", "close")

    async def reset(self, batch_size: int = 1, seed: int | None = None) -> list[Observation]:
        """Start a batch of `batch_size` distinct items, drawn with a local RNG (the same `seed` draws the same
        batch; the global `random` is untouched); sets the environment up first if needed."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= len(self.items):
            raise ValueError(f"batch_size must be an integer from 1 to {len(self.items)} (the dataset's size), "
                             f"not {batch_size!r}")
        await self.setup()
        self._batch = [self.items[i] for i in random.Random(seed).sample(range(len(self.items)), batch_size)]
        self._answered = [False] * batch_size
        self._observations = [self._observe(item) for item in self._batch]
        return list(self._observations)

    async def step(self, action: ActionLike) -> list[StepResult]:
        """Score answers to some or all items: an `Action` (or any object with `index` and `llm_response`), a list
        of them, {index: response}, or a plain string for a batch of one; one `StepResult` per answer, in order."""
        actions = self._normalize_actions(action)
        references = [self._batch[a.index]["final_answer"] for a in actions]
        verdicts = await self._verify([a.llm_response for a in actions], references)
        for a in actions:
            self._answered[a.index] = True
        return [self._result(a, verdict) for a, verdict in zip(actions, verdicts, strict=True)]

    def _normalize_actions(self, action: ActionLike) -> list[Action]:
        """`action` as a list of `Action`s for unanswered items; ValueError names any bad or repeated index."""
        if not self._batch:
            raise RuntimeError("there is no batch to answer: call reset() first")
        actions = self._as_actions(action)
        indices = [a.index for a in actions]
        unknown = sorted({i for i in indices if not 0 <= i < len(self._batch)})
        if unknown:
            raise ValueError(f"actions for indices that do not exist: {unknown} "
                             f"(this batch has indices 0 to {len(self._batch) - 1})")
        repeated = sorted(i for i, count in Counter(indices).items() if count > 1)
        if repeated:
            raise ValueError(f"more than one action for indices {repeated}: an item takes one answer")
        answered = sorted(i for i in indices if self._answered[i])
        if answered:
            raise ValueError(f"indices {answered} are already answered: an item takes one answer "
                             "(reset() starts a new batch)")
        return actions

    def _as_actions(self, action: ActionLike) -> list[Action]:
        """Every accepted form of answer as a list of `Action`s (indices not yet checked)."""
        if isinstance(action, str):
            if len(self._batch) != 1:
                raise ValueError(f"a plain string answers a batch of one; this batch has {len(self._batch)} items: "
                                 "pass Actions or {index: response}")
            return [Action(index=0, llm_response=action)]
        if isinstance(action, Mapping):
            actions = [Action(index=index, llm_response=response) for index, response in action.items()]
        elif isinstance(action, list | tuple):
            actions = [_as_action(a) for a in action]
        else:
            actions = [_as_action(action)]
        if not actions:
            raise ValueError("no actions given")
        return actions

    def _observe(self, item: dict[str, Any]) -> Observation:
        """An item's observation: the question as it is and as chat messages."""
        messages = Conversation(self.system_prompt or "").prompt(item["question"])
        return Observation(question=item["question"], messages=messages, metadata=copy.deepcopy(item["metadata"]))

    def _result(self, action: Action, verdict: Verdict) -> StepResult:
        """The step result of one verified answer."""
        item = self._batch[action.index]
        info = {"index": action.index, "question": item["question"], "response": action.llm_response,
                "reference": item["final_answer"], "verification": verdict.status, "error": verdict.error}
        return StepResult(self._observations[action.index], verdict.score, True, info)

    async def _verify(self, responses: list[str], references: list[Any]) -> list[Verdict]:
        """One verdict per response: by the verifier's `verify_batch`, else by `verify` (or itself) per item."""
        verify_batch = getattr(self.verifier, "verify_batch", None)
        if verify_batch is not None:
            return await self._verify_all(verify_batch, responses, references)
        verify = getattr(self.verifier, "verify", self.verifier)
        return list(await asyncio.gather(*[self._verify_one(verify, response, reference)
                                           for response, reference in zip(responses, references, strict=True)]))

    async def _verify_one(self, verify: Callable[..., Any], response: str, reference: Any) -> Verdict:
        """One response's verdict, within the timeout."""
        try:
            return _verdict(await asyncio.wait_for(_settled(verify, response, reference), self.timeout))
        except Exception as error:  # a failing verifier scores 0 and says why; the batch goes on
            return self._failed(error)

    async def _verify_all(self, verify_batch: Callable[..., Any], responses: list[str], references: list[Any]
                          ) -> list[Verdict]:
        """Every response's verdict from one `verify_batch` call, within the timeout."""
        try:
            scores = list(await asyncio.wait_for(_settled(verify_batch, responses, references), self.timeout))
            if len(scores) != len(responses):
                raise ValueError(f"verify_batch returned {len(scores)} scores for {len(responses)} responses")
            return [_verdict(score) for score in scores]
        except Exception as error:  # a failing verifier scores 0 and says why
            return [self._failed(error)] * len(responses)

    def _failed(self, error: Exception) -> Verdict:
        """The zero-score verdict of a verification that timed out or failed."""
        if isinstance(error, TimeoutError):
            return Verdict(0.0, "timeout", f"verification timed out after {self.timeout:g}s")
        return Verdict(0.0, "error", f"verification failed: {type(error).__name__}: {error}")


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A dataset row as an item: question, final answer, and metadata (its other columns and its metadata)."""
    extra = {k: v for k, v in row.items() if k not in ("question", "final_answer", "metadata")}
    return {"question": str(row["question"]), "final_answer": row["final_answer"],
            "metadata": {**extra, **(row.get("metadata") or {})}}


def _as_action(action: Any) -> Action:
    """An `Action`, a dict of its fields, or any object with `index` and `llm_response`, as an `Action`."""
    if isinstance(action, Action):
        return action
    if isinstance(action, Mapping):
        return Action.model_validate(action)
    if hasattr(action, "index") and hasattr(action, "llm_response"):
        return Action(index=action.index, llm_response=action.llm_response,
                      metadata=getattr(action, "metadata", None) or {})
    raise TypeError("an action is an Action (index, llm_response), a list of them, {index: response}, or a string "
                    f"for a batch of one; not {type(action).__name__}")


def _verdict(score: Any) -> Verdict:
    """A verifier's answer (a bool or a number) as a verdict."""
    if isinstance(score, str) or not isinstance(score, bool | int | float):
        raise TypeError(f"the verifier returned {score!r}, not a bool or a number")
    return Verdict(float(score), "success" if score > 0 else "failure")


async def _settled(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`'s value: awaited when async, else computed in a daemon thread, so that a timeout can
    abandon a verifier that hangs without ever waiting for it."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await _in_daemon_thread(function, *args)
    return await result if inspect.isawaitable(result) else result


def _in_daemon_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future:
    """A future of the running loop that a daemon thread settles with `function(*args)`."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled by a timeout
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = function(*args), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed while the verifier ran
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="verifier", daemon=True).start()
    return future


async def _call_hook(target: Any, *names: str) -> None:
    """Call (and await, if async) the first of `target`'s methods `names` it has."""
    hook = next((getattr(target, name) for name in names if callable(getattr(target, name, None))), None)
    if hook is not None:
        result = hook()
        if inspect.isawaitable(result):
            await result
