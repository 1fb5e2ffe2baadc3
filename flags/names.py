"""Every flag and switch the platform reads, named once."""

MATCH_ENGINE_V1 = "match_engine_v1"  # waffle flag: the run-submission UI
SAFE_MODE = "global.safe_mode"  # waffle switch: turn off everything risky, everywhere
