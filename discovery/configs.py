"""The discovery pipeline's config names, each with its schema, default and safe value."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flags.config.registry import config_declare


class RankerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["epsilon_greedy_v1"] = Field(default="epsilon_greedy_v1", description="The ranking policy.")
    epsilon: float = Field(default=0.08, ge=0, le=1, description="How often a random candidate leads the slate.")
    slate_size: int = Field(default=12, ge=1, le=100, description="Suggestions served per request.")
    attribution_seconds: int = Field(
        default=1800, ge=60, le=7 * 24 * 3600, description="How long after a decision a click or save rewards it."
    )


RANKER_POLICY = config_declare(
    "ranker.policy",
    schema=RankerPolicy,
    default=RankerPolicy(),
    # Safe mode: no exploration (and so nothing logged as a randomized decision).
    safe=RankerPolicy(epsilon=0.0),
    description="The discovery ranker's policy (epsilon-greedy).",
)
