"""The discovery pipeline's config names, each with its schema, default and safe value."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flags.config.registry import config_declare


class RankerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(
        default="epsilon_greedy_v1",
        pattern=r"^[a-z0-9_]{1,50}$",
        description="The ranking policy's version: decisions are logged, and judged offline, per version.",
    )
    scoring: Literal["affinity", "popularity"] = Field(
        default="affinity",
        description="How candidates are scored: affinity x popularity over the member's interests, or popularity.",
    )
    epsilon: float = Field(default=0.08, ge=0, le=1, description="How often a random candidate leads the slate.")
    slate_size: int = Field(default=12, ge=1, le=100, description="Suggestions served per request.")
    attribution_seconds: int = Field(
        default=1800, ge=60, le=7 * 24 * 3600, description="How long after a decision a click or save rewards it."
    )


RANKER_POLICY = config_declare(
    "ranker.policy",
    schema=RankerPolicy,
    default=RankerPolicy(),
    # Safe mode: no exploration (and so nothing logged as a randomized decision); the slate
    # size and the attribution window in force stay.
    safe_update={"epsilon": 0.0},
    description="The discovery ranker's policy (epsilon-greedy).",
)


class RetentionPolicy(BaseModel):
    """How long learning events and intent signals are kept, and how many rows one GC
    transaction deletes. Rows of an open attribution window are kept whatever these say."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_events_days: int = Field(
        default=90, ge=1, le=3650, description="Days a learning event (a ranking decision) is kept."
    )
    intent_signals_days: int = Field(default=90, ge=1, le=3650, description="Days an intent signal is kept.")
    batch_size: int = Field(
        default=5000, ge=1, le=20000, description="Rows deleted per transaction (each batch commits on its own)."
    )


DISCOVERY_RETENTION = config_declare(
    "discovery.retention",
    schema=RetentionPolicy,
    default=RetentionPolicy(),
    # No safe value: safe mode changes what members are served, not how long rows are kept.
    description="Retention of learning events and intent signals (the daily GC, discovery.gc).",
)
