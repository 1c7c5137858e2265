"""Agents: names, specs, and the tokens remote agents sign in with (only hashes are stored)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.store.models import AgentRow


class AgentConflict(ValueError):
    """An agent name already belongs to a different spec."""


def ensure_agent(session: Session, name: str, kind: str, spec: str) -> int:
    """The id of agent `name`, creating it; AgentConflict when the name has another spec."""
    row = session.scalar(select(AgentRow).where(AgentRow.name == name))
    if row is None:
        row = AgentRow(name=name, kind=kind, spec=spec)
        session.add(row)
        session.flush()
    elif (row.kind, row.spec) != (kind, spec):
        raise AgentConflict(
            f"agent name '{name}' is already used by spec '{row.spec}'; name this one NAME={spec}"
        )
    return row.id


def ensure_agents(session: Session, specs: Sequence[tuple[str, str, str]]) -> list[int]:
    """Ids of (name, kind, spec) triples, creating the agents that are new."""
    return [ensure_agent(session, name, kind, spec) for name, kind, spec in specs]


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_with_token(session: Session, name: str, kind: str = "remote") -> str:
    """Create agent `name` with a new token; returns the token (shown once, only its hash is kept)."""
    if session.scalar(select(AgentRow.id).where(AgentRow.name == name)) is not None:
        raise AgentConflict(f"agent name '{name}' is taken")
    token = "arena_" + secrets.token_urlsafe(32)  # never starts with "-" (read as a flag)
    session.add(AgentRow(name=name, kind=kind, spec="", token_hash=hash_token(token)))
    session.flush()
    return token


class RegistrationConflict(ValueError):
    """A model name registered under another email, or with another token."""


def register_model(session: Session, name: str, email: str, token: str, kind: str = "textarena") -> None:
    """Register (or confirm) a TextArena client's model: the name, its owner's email and its token."""
    row = session.scalar(select(AgentRow).where(AgentRow.name == name))
    if row is None:
        session.add(AgentRow(name=name, kind=kind, spec="", email=email, token_hash=hash_token(token)))
        session.flush()
    elif (row.email or "").lower() != email.lower():
        raise RegistrationConflict(f"Model name '{name}' is already registered with another email "
                                   f"(existing: {_mask(row.email or '')})")
    elif row.token_hash != hash_token(token):
        raise RegistrationConflict(f"Model '{name}' is already registered with a different token: "
                                   "the agent's configuration changed")


def _mask(email: str) -> str:
    user, _, domain = email.partition("@")
    return f"{user[:1]}***@{domain}" if domain else "***"


def by_token(session: Session, token: str) -> AgentRow | None:
    """The agent a token belongs to, if any."""
    return session.scalar(select(AgentRow).where(AgentRow.token_hash == hash_token(token)))


def agent_names(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """Names of the given agent ids."""
    return dict(session.execute(select(AgentRow.id, AgentRow.name).where(AgentRow.id.in_(ids))).all())

