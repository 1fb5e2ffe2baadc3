"""Every flag and switch the platform reads, named once, each with its safe value: what it
reads while the ``global.safe_mode`` switch is on (and while the flag store cannot be read).
A flag made in the admin declares its safe value there (``Flag.safe_value``); one declared
here wins, and holds even when the database is down."""

from __future__ import annotations

SAFE_MODE = "global.safe_mode"  # waffle switch: turn off everything risky, everywhere

MATCH_ENGINE_V1 = "match_engine_v1"  # waffle flag: the run-submission UI

# name -> value while safe mode is on (None: safe mode leaves it alone).
FLAG_SAFE_VALUES: dict[str, bool | None] = {
    # The run form stays up in safe mode: runs of known startups are served from what is
    # stored, and fetching unknown sites is paused by the runs.fetch config's safe value.
    MATCH_ENGINE_V1: None,
}
