"""Which games and seats an export reads: the filters as one validated model, dates parsed to UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from arena.protocol import GameResult

DATE_HELP = "use YYYY-MM-DD or an ISO 8601 time such as 2025-01-31T18:00:00+00:00"


class ExportError(ValueError):
    """An export cannot run as asked (unknown format, env or agent, bad date, unwritable path): one line, and
    the option at fault when there is one."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(f"{option}: {message}" if option else message)
        self.message, self.option = message, option


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_time(value: Any, end_of_day: bool = False) -> datetime | None:
    """A date or ISO time as an aware UTC datetime (naive times are UTC); a date alone is its midnight, or the
    next day's with `end_of_day`. ValueError naming the formats for anything else."""
    if value is None or isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day) + timedelta(days=int(end_of_day))
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a date: {DATE_HELP}") from None
        if end_of_day and _is_date(text):
            moment += timedelta(days=1)
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ExportFilters(BaseModel):
    """The games and seats to export; empty fields select everything.

    Episode filters (`envs`, `since`, `until`, `tournament`) pick games; seat filters (`agents`, `outcome`,
    `min_rating`, `only_winners`) pick the seats whose play is exported (a game is read when one seat is picked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    envs: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    since: datetime | None = None  # games started at or after this time
    until: datetime | None = None  # games started before this time (a date alone: through that day)
    min_rating: float | None = None  # seats whose agent's conservative rating in the game's env is at least this
    outcome: GameResult | None = None
    tournament: str | None = None
    only_winners: bool = False  # the same as outcome=win

    @field_validator("since", mode="before")
    @classmethod
    def _since(cls, value: Any) -> datetime | None:
        return parse_time(value)

    @field_validator("until", mode="before")
    @classmethod
    def _until(cls, value: Any) -> datetime | None:
        return parse_time(value, end_of_day=True)

    @field_validator("envs", "agents", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _winners(self) -> ExportFilters:
        if self.only_winners and self.outcome not in (None, GameResult.WIN):
            raise ValueError(f"only_winners means outcome win, not {self.outcome}")
        return self

    @property
    def result(self) -> GameResult | None:
        """The seat result asked for (`only_winners` means win)."""
        return GameResult.WIN if self.only_winners else self.outcome

    @classmethod
    def parse(cls, **values: Any) -> ExportFilters:
        """Validate filters given as keywords; ExportError with one line naming the field otherwise."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as error:
            first = error.errors()[0]
            option = ".".join(str(part) for part in first["loc"]) or None
            raise ExportError(str(first["msg"]).removeprefix("Value error, "), option) from None
