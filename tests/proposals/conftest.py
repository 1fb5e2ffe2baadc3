from __future__ import annotations

import random

import pytest

from proposals.identity.services import member_create
from proposals.vocab import INTERESTS


@pytest.fixture
def members(db):
    """A small community: 30 members with overlapping interests (deterministic)."""
    rng = random.Random(5)
    return [
        member_create(username=f"m{i:03d}", interests=rng.sample(INTERESTS, 3), display_name=f"Member {i}")
        for i in range(30)
    ]


@pytest.fixture
def loop_settings(settings):
    settings.PROPOSALS_QUEUE_LOW = 6
    settings.PROPOSALS_QUEUE_HIGH = 9
    settings.PROPOSALS_VOTING_LOW = 3
    settings.PROPOSALS_VOTING_HIGH = 4
    settings.PROPOSALS_VOTERS_PER_PROPOSAL = 5
    settings.PROPOSALS_APPROVE_THRESHOLD = 3
    return settings
