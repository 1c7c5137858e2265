"""Server settings: command-line flags first, then ARENA_* environment variables, then defaults."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Everything `arena serve` can be told."""

    model_config = SettingsConfigDict(env_prefix="ARENA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    tls_port: int = 8443  # TextArena clients always open their game socket over TLS
    tls_cert: str | None = None
    tls_key: str | None = None
    db: str | None = None
    house: list[str] = Field(default_factory=lambda: ["random"])
    move_timeout: float = 60.0
    resume_grace: float = 30.0
    house_wait: float = 10.0
    max_messages_per_second: int = 200
    match_interval: float = 0.2
