"""The runs pipeline's config names, each with its schema, default and safe value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flags.config.registry import config_declare


class RunsFetch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unknown_sites: bool = Field(
        default=True, description="Fetch the page of a startup not stored yet (off: such runs wait and retry)."
    )
    paused_retry_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How long a run of an unknown site waits while fetching is paused."
    )


RUNS_FETCH = config_declare(
    "runs.fetch",
    schema=RunsFetch,
    default=RunsFetch(),
    # Safe mode: no new fetches of unknown sites; startups already stored are still served.
    safe=RunsFetch(unknown_sites=False),
    description="Fetching startup pages for match runs.",
)
