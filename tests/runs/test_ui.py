"""The run page at / in a real browser (Debian's chromium, driven by Playwright).

No Celery worker runs here: the test plays the worker, claiming and processing the run
once the page shows it queued, so every state the page shows is one the run really had.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from waffle.testutils import override_flag

from flags.names import MATCH_ENGINE_V1
from matchplatform.exceptions import InvalidInput
from runs.canonical import url_canonicalize
from runs.models import MatchRun, MatchRunStatus, StartupInvestorMatch
from runs.queue import runs_queue
from runs.services import match_run_process, match_runs_process_batch
from tests.factories import InvestorFactory, StartupFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/ui-ready.png"


def submit(page: Page, url: str) -> None:
    page.goto("/")
    page.get_by_label("Your startup's website").fill(url)
    page.get_by_role("button", name="Find investors").click()


def test_a_user_pastes_a_url_watches_it_reach_ready_and_sees_ranked_investors_with_reasons(engine_on, page):
    StartupFactory(
        canonical_url="https://acme.example",
        name="Acme Ledger",
        description="We build AI tools for fintech teams.",
        sectors=["ai", "fintech"],
    )
    InvestorFactory(name="Northwind Capital", sectors=["ai", "fintech"], activity=0.9)
    InvestorFactory(name="Harbor Seed", sectors=["fintech"], activity=0.6)
    InvestorFactory(name="Bluebird Ventures", sectors=["ai"], stages=["series-a"], activity=0.4)
    InvestorFactory(name="Quarry Partners", sectors=["climate"], countries=[], activity=0.8)

    submit(page, "https://www.acme.example/?utm_source=ui-test")

    state, elapsed = page.get_by_test_id("run-state"), page.get_by_test_id("run-elapsed")
    expect(state).to_have_text("Queued")
    expect(page.get_by_test_id("startup-name")).to_have_text("Acme Ledger")
    expect(page.get_by_test_id("startup-description")).to_have_text("We build AI tools for fintech teams.")
    expect(page.get_by_test_id("run-url-canonical")).to_have_text("https://acme.example")
    expect(page.get_by_test_id("form-error")).to_be_hidden()
    steps = page.get_by_test_id("run-stepper").locator("li")
    expect(steps.nth(0)).to_have_attribute("aria-current", "step")
    # The counter ticks between polls while the run waits.
    first = elapsed.inner_text()
    assert re.fullmatch(r"\d+\.\d s", first)
    expect(elapsed).not_to_have_text(first)

    # Play the worker in two steps so the page can be seen in the processing state.
    (lease,) = runs_queue.claim(owner="ui-test", limit=1, ttl=60)
    expect(state).to_have_text("Processing")
    expect(steps.nth(0)).to_have_attribute("data-state", "done")
    expect(steps.nth(1)).to_have_attribute("data-state", "current")
    assert match_run_process(lease=lease) == MatchRunStatus.READY

    expect(state).to_have_text("Ready")
    for i in range(3):
        expect(steps.nth(i)).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("run-attempt")).to_be_hidden()

    run = MatchRun.objects.get()
    expected = list(
        StartupInvestorMatch.objects.filter(run=run).order_by("rank").values_list("rank", "investor__name", "reasons")
    )
    assert len(expected) == 4
    rows = page.get_by_test_id("match-row")
    expect(rows).to_have_count(len(expected))
    expect(page.get_by_test_id("matches-title")).to_have_text("4 investors, best fit first")
    ranks = [int(text) for text in page.get_by_test_id("match-rank").all_inner_texts()]
    assert ranks == list(range(1, len(expected) + 1))
    assert page.get_by_test_id("match-name").all_inner_texts() == [name for _, name, _ in expected]
    assert expected[0][1] == "Northwind Capital"
    for i, (_, _, reasons) in enumerate(expected):
        assert reasons, "the engine gives every match at least one reason"
        expect(rows.nth(i).get_by_test_id("match-reasons").locator("li")).to_have_text(reasons)
        expect(rows.nth(i).get_by_test_id("match-score")).to_have_text(re.compile(r"^\d{1,3}%$"))
    top = rows.nth(0)
    expect(top.get_by_test_id("match-reasons")).to_contain_text("Invests in ai, fintech")
    expect(top.get_by_test_id("match-sectors")).to_contain_text("fintech")
    expect(top.get_by_test_id("match-stages")).to_contain_text("seed")
    expect(top.get_by_test_id("match-checks")).to_have_text("$250K – $2M")

    # Once ready the counter stops at the run's own duration.
    run.refresh_from_db()
    assert run.duration_ms is not None
    shown = float(elapsed.inner_text().removesuffix(" s"))
    assert abs(shown - run.duration_ms / 1000) <= 0.05
    page.wait_for_timeout(300)
    assert elapsed.inner_text() == f"{shown:.1f} s"
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_a_bad_url_shows_the_apis_error_message_inline_and_creates_no_run(engine_on, page):
    with pytest.raises(InvalidInput) as refused:
        url_canonicalize(url="http://127.0.0.1/")

    submit(page, "http://127.0.0.1/")

    error = page.get_by_test_id("form-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(refused.value.message)
    expect(error).to_have_attribute("role", "alert")
    expect(page.get_by_label("Your startup's website")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("run")).to_be_hidden()
    assert MatchRun.objects.count() == 0


def test_a_user_who_submits_too_fast_is_asked_to_slow_down(engine_on, page, settings):
    settings.RUNS_SUBMIT_RATE = "1/min"
    StartupFactory(canonical_url="https://acme.example")

    submit(page, "https://acme.example")
    expect(page.get_by_test_id("run-state")).to_have_text("Queued")
    page.get_by_role("button", name="Find investors").click()

    expect(page.get_by_test_id("form-error")).to_contain_text("slow down")
    assert MatchRun.objects.count() == 1


def test_with_the_flag_off_the_page_says_the_engine_is_not_enabled_and_shows_no_form(page):
    with override_flag(MATCH_ENGINE_V1, active=False):
        page.goto("/")
        expect(page.get_by_test_id("engine-disabled")).to_contain_text("The match engine is not enabled for you yet")
        expect(page.get_by_test_id("run-form")).to_have_count(0)
        expect(page.locator("input, form")).to_have_count(0)
        # The site's navigation is still there; the admin is only listed for staff.
        expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/api/docs/")
        expect(page.get_by_role("link", name="Sign in")).to_have_attribute("href", "/signin")
        expect(page.get_by_role("link", name="Admin")).to_have_count(0)


def test_a_run_that_ends_in_error_shows_the_error_state_and_its_message(engine_on, page):
    # No startup is known for this URL, so the worker must fetch it, and .invalid never resolves:
    # a refused input, which fails at the first attempt without any retry setting.
    InvestorFactory()

    submit(page, "https://nonexistent.invalid/")
    state = page.get_by_test_id("run-state")
    expect(state).to_have_text("Queued")
    assert match_runs_process_batch() == 1

    expect(state).to_have_text("Error")
    run = MatchRun.objects.get()
    assert run.status == MatchRunStatus.ERROR
    assert run.attempts == 1
    assert "could not resolve the host nonexistent.invalid" in run.last_error
    error = page.get_by_test_id("run-error")
    # The page says what is wrong with the URL, not what the resolver answered (staff read that).
    expect(error).to_have_text("The host nonexistent.invalid does not resolve to a public address.")
    expect(error).to_have_attribute("role", "alert")
    last_step = page.get_by_test_id("run-stepper").locator("li").nth(2)
    expect(last_step).to_have_attribute("data-state", "error")
    expect(last_step).to_contain_text("Error")
    expect(page.get_by_test_id("matches")).to_be_hidden()
    expect(page.get_by_test_id("startup")).to_be_hidden()
