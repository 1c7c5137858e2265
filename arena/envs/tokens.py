"""Token-faithful conversations: one growing token sequence per seat, with a mask of the model's tokens.

The prompt for each turn is the previous prompt, the tokens the model sampled, and the environment's
reply tokenized on its own: nothing is re-tokenized and no chat template is applied twice. Sampled
tokens come from the inference engine when it returns them, else from the tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arena.envs.episode import Trajectory
from arena.prompting import PLAIN_CUE, Conversation, plain_prompt

_PROBE = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}]


class Tokenizer:
    """Encoding and chat-template rendering over a Hugging Face tokenizer or a `tokenizers.Tokenizer`."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.template = bool(getattr(raw, "chat_template", None)) and hasattr(raw, "apply_chat_template")

    def encode(self, text: str, special: bool = False) -> list[int]:
        """Token ids of `text` (with the tokenizer's special tokens, such as BOS, when `special`)."""
        encoded = self.raw.encode(text, add_special_tokens=special)
        return list(getattr(encoded, "ids", encoded))

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens included."""
        return self.raw.decode(ids, skip_special_tokens=False)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied to `messages`, ready for the model's reply."""
        return self.raw.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def opening(self, messages: list[dict[str, str]]) -> list[int]:
        """The first prompt: the whole chat template, or the plain-text prompt with BOS."""
        if self.template:
            return self.encode(self.render(messages))
        ids, bos = self.encode(plain_prompt(messages), special=True), getattr(self.raw, "bos_token_id", None)
        return [bos, *ids] if bos is not None and ids[:1] != [bos] else ids  # some tokenizers add no BOS

    def reply(self, message: dict[str, str], last_sampled: list[int]) -> list[int]:
        """The tokens between the model's last sampled token and its next reply: end of its turn, the new
        message, and the generation prompt (what the template adds after an assistant message)."""
        if not self.template:
            return self.encode("\n\n" + message["content"] + PLAIN_CUE)
        full, head = self.render([*_PROBE, message]), self.render(_PROBE[:1]) + _PROBE[1]["content"]
        if not full.startswith(head):
            raise ValueError("the chat template re-renders earlier turns (it is not prefix-preserving); "
                             "token-faithful multi-turn sequences need one that is")
        delta = full[len(head):]
        ended = self.decode(last_sampled[-1:]) if last_sampled else ""
        if ended.strip() and delta.startswith(ended):  # the model sampled the end-of-turn token itself
            delta = delta[len(ended):]
        return self.encode(delta)


def load_tokenizer(tokenizer: Any) -> Tokenizer | None:
    """A `Tokenizer` from None, a tokenizer object, or a model folder / `tokenizer.json` path."""
    if tokenizer is None or isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, str | Path):
        path = Path(tokenizer).expanduser()
        try:
            from transformers import AutoTokenizer

            return Tokenizer(AutoTokenizer.from_pretrained(str(path.parent if path.is_file() else path)))
        except ImportError:
            from tokenizers import Tokenizer as RustTokenizer

            return Tokenizer(RustTokenizer.from_file(str(path if path.is_file() else path / "tokenizer.json")))
    return Tokenizer(tokenizer)


class TokenChat:
    """One seat's conversation: chat messages, and (with a tokenizer) the token sequence, mask and logprobs."""

    def __init__(self, system_prompt: str, tokenizer: Any = None) -> None:
        self.conversation = Conversation(system_prompt, growing=True)
        self.tokenizer = load_tokenizer(tokenizer)
        self.ids: list[int] = []
        self.mask: list[int] = []
        self.logprobs: list[float | None] = []
        self.source: str | None = None
        self._sampled: list[int] = []
        self._turn_start = 0  # where the tokens of the turn being played begin

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat so far."""
        return self.conversation.messages

    @property
    def prompt_ids(self) -> list[int] | None:
        """The token ids to generate from now (None without a tokenizer)."""
        return list(self.ids) if self.tokenizer is not None else None

    def observe(self, observation: str) -> list[dict[str, str]]:
        """Add the environment's observation (its new part) as a user message; returns the chat to send."""
        first = not self.conversation.messages
        self._turn_start = len(self.ids)
        messages = self.conversation.prompt(observation)
        if self.tokenizer is not None:
            added = self.tokenizer.opening(messages) if first else self.tokenizer.reply(messages[-1], self._sampled)
            self._extend(added, 0, [None] * len(added))
        return messages

    def answer(self, text: str, token_ids: list[int] | None = None, logprobs: list[float] | None = None) -> None:
        """Add the model's reply: the engine's own token ids when given, else the tokenizer's."""
        self.conversation.answered(text)
        if token_ids is not None:
            self.source = "engine"
        elif self.tokenizer is not None:
            token_ids, logprobs = self.tokenizer.encode(text), None
            self.source = self.source or "tokenizer"
        else:
            return
        self._sampled = list(token_ids)
        self._extend(self._sampled, 1, list(logprobs) if logprobs is not None else [None] * len(token_ids))

    def turn_tokens(self) -> dict[str, Any]:
        """The tokens the last turn added, as a turn records them: the environment's, then the model's with
        their logprobs (empty without a tokenizer or engine ids). A seat's turns, joined, are its sequence."""
        if not self.ids:
            return {}
        start, sampled = self._turn_start, len(self.ids) - len(self._sampled)
        return {"env_token_ids": self.ids[start:sampled], "token_ids": self.ids[sampled:],
                "logprobs": self.logprobs[sampled:], "token_source": self.source}

    def _extend(self, ids: list[int], mask: int, logprobs: list[float | None]) -> None:
        self.ids += ids
        self.mask += [mask] * len(ids)
        self.logprobs += logprobs

    def fill(self, trajectory: Trajectory) -> None:
        """Copy the messages and the token sequence into `trajectory`."""
        trajectory.messages = list(self.messages)
        if self.ids:
            trajectory.token_ids, trajectory.mask, trajectory.logprobs = self.ids, self.mask, self.logprobs
            trajectory.token_source = self.source  # type: ignore[assignment]
