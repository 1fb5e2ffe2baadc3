from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from django.core.cache import cache
from django.db import connections

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

# Debian's Chromium, driven by Playwright (its own browser download does not work here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _quiet_broker(settings):
    # Tests drive the queue directly; only the tests that start real workers wake them.
    settings.OPS_WAKE_WORKERS = False
    settings.RUNS_SUBMIT_RATE = "10000/min"
    settings.AUTH_RATE = "10000/min"
    cache.clear()
    yield
    cache.clear()
    # A task run eagerly here (``.apply()``, ``.delay()`` in eager mode) starts this process's
    # heartbeat thread, which then beats into the test database as a live worker for the rest
    # of the session and fails the tests that count workers: run a task's body with ``.run()``.
    beating = [t for t in threading.enumerate() if t.name == "ops-heartbeat" and t.is_alive()]
    if beating:
        from ops.signals import heartbeat_stop

        heartbeat_stop()
        pytest.fail("this test started the pytest process's worker heartbeat: run tasks with .run(), not .apply()")


@pytest.fixture(autouse=True)
def _fresh_corpus_cache():
    from runs.engine import corpus_cache

    corpus_cache.clear()
    yield
    corpus_cache.clear()


@pytest.fixture(autouse=True)
def _fresh_discovery_catalog(settings):
    """Each test reads the candidates it wrote: the serving catalog checks its stamp at every
    suggestion (a serving process checks once a second) and starts empty."""
    from discovery.serving import catalog_clear

    settings.DISCOVERY_CATALOG_CHECK_SECONDS = 0.0
    catalog_clear()
    yield
    catalog_clear()


@pytest.fixture(autouse=True)
def _fresh_flags_snapshot():
    """Each test reads the flags it wrote: a rolled-back test's snapshot is not kept (its
    stamp went back with the rollback)."""
    from flags.snapshot import snapshot_clear

    snapshot_clear()
    yield
    snapshot_clear()


@pytest.fixture
def flags_snapshot_warm(db, settings):
    """The flags snapshot loaded, and not checked again during the test: for tests that count
    a request's queries (a process reads the flags stamp at most once a second, and loads
    the snapshot once; neither belongs to the request being counted)."""
    from flags.snapshot import snapshot_current

    settings.FLAGS_STAMP_CHECK_SECONDS = 3600.0
    snapshot_current()


@pytest.fixture
def discovery_catalog_warm(db, settings):
    """The serving catalog loaded and trusted for the test, as a serving process holds it
    between its once-a-second stamp checks: for tests that count a suggestion's queries."""
    from discovery.serving import catalog_current

    settings.DISCOVERY_CATALOG_CHECK_SECONDS = 3600.0
    catalog_current()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff_client(django_user_model):
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user(username="ops", password="pw-for-tests", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, and Django refuses
    # ORM calls from a thread with a running loop; the test's ORM calls are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Inside this block Django's per-context connection store hands the test a
            # connection of its own; close it here, in the same context, or it outlives the
            # test and blocks dropping the test database.
            connections.close_all()


# How long the browser tests wait for the page (actions and expect()).
TIMEOUT_MS = 15_000


@pytest.fixture
def new_context(browser: Browser, live_server) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts on the live server, closed after the test (for two members at once)."""
    from playwright.sync_api import expect

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
