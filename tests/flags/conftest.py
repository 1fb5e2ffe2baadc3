from __future__ import annotations

from tests.flags.rollout_fakes import fake_metrics  # noqa: F401  # the fixture, for every flags test
