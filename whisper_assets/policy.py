"""The base of every policy model: frozen, and unknown keys are errors (a typo must not pass silently)."""

from pydantic import BaseModel, ConfigDict


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
