"""Options shared by the LLM agent specs: sampling, prompting, and a `config=FILE` to hold them.

`openai:M?temperature=0.2&config=play.toml` reads `play.toml` (or a `.json` file) as a flat table of
the same options; options written in the spec override the file's.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.prompting import EXTRACTORS


def _stop(value: Any) -> list[str]:
    """One stop string, or a list of them (a config file may give a list)."""
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def flag(value: Any) -> bool:
    """A boolean written as true/false, 1/0 or yes/no."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"'{value}' is not a boolean (use true or false)")
    return text in ("1", "true", "yes")


SAMPLING: dict[str, Callable[[Any], Any]] = {
    "temperature": float, "top_p": float, "top_k": int, "min_p": float, "max_tokens": int, "seed": int,
    "presence_penalty": float, "frequency_penalty": float, "repetition_penalty": float, "stop": _stop,
}
PROMPTING = ("extract", "system", "conversation", "constrain")


@dataclass
class LLMOptions:
    """Parsed options: sampling parameters, prompting choices, and the agent's own options."""

    sampling: dict[str, Any] = field(default_factory=dict)
    extract: str = "bracket"
    system: str | None = None
    conversation: bool = False
    constrain: bool | None = None  # decode under a choice constraint over the listed moves; None: not said
    own: dict[str, Any] = field(default_factory=dict)


def read_config(path: str) -> dict[str, Any]:
    """A flat table of options from a TOML or JSON file; ValueError saying what is wrong."""
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as error:
        raise ValueError(f"cannot read config file {file}: {error.strerror}") from error
    try:
        table = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"config file {file} is not valid {'JSON' if file.suffix == '.json' else 'TOML'}: "
                         f"{error}") from error
    if not isinstance(table, dict):
        raise ValueError(f"config file {file} must hold a table of options")
    return table


def parse_llm_options(params: dict[str, str], sampling: tuple[str, ...], own: dict[str, Callable[[Any], Any]]
                      ) -> LLMOptions:
    """Merge `config=FILE` beneath the spec's options and convert each; ValueError names any unknown one."""
    merged = {**(read_config(params["config"]) if "config" in params else {}),
              **{k: v for k, v in params.items() if k != "config"}}
    known = (*sampling, *PROMPTING, *own)
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ValueError(f"unknown options {unknown}; known: {', '.join(known)}, config")
    options = LLMOptions(
        sampling={k: SAMPLING[k](merged[k]) for k in sampling if k in merged},
        extract=str(merged.get("extract", "bracket")), system=merged.get("system"),
        conversation=flag(merged.get("conversation", False)),
        constrain=flag(merged["constrain"]) if "constrain" in merged else None,
        own={k: convert(merged[k]) for k, convert in own.items() if k in merged})
    if options.extract not in EXTRACTORS:
        raise ValueError(f"extract must be one of {', '.join(EXTRACTORS)}")
    return options
