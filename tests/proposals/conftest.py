from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from proposals.identity.services import member_create
from proposals.vocab import INTERESTS

# How long the browser tests wait for the page (actions and expect()).
TIMEOUT_MS = 15_000


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


@pytest.fixture
def new_context(browser: Browser, live_server) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts on the live server, closed after the test (for two members at once)."""
    contexts: list[BrowserContext] = []

    def make(**options) -> BrowserContext:
        context = browser.new_context(
            base_url=live_server.url, viewport=options.pop("viewport", {"width": 1100, "height": 900}), **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_context) -> Page:
    return new_context().new_page()
