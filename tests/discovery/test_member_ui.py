"""Done-when 7, in a real browser (Debian's chromium, driven by Playwright) against the live
server, with every request that leaves it refused: a member picks interests on /discover,
sees suggestions, opens one and saves another; the click is their signal, joined to the
decision that served it as its reward (the member's own decision shows reward 1), and staff
see that rewarded decision in policy health for the current policy version. A 429 on the
page reads as one."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from discovery.configs import RANKER_POLICY
from discovery.models import IntentSignal, LearningEvent
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.services import catalog_seed_day0
from flags.config.selectors import config_get
from flags.models import Flag
from tests.support.ui import sign_in_form
from tests.test_pages_ui import offline

PASSWORD = "correct horse battery staple"


def _sign_out(page: Page) -> None:
    page.get_by_test_id("nav-signout").click()
    expect(page.get_by_test_id("nav-signin")).to_be_visible()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_member_picks_interests_clicks_a_suggestion_and_staff_see_the_reward_in_policy_health(
    page: Page, live_server, settings
):
    catalog_seed_day0()
    for name in (LEARNING_ENABLED, MARKETPLACE_SUGGEST):  # as the data migration makes them
        Flag.objects.update_or_create(name=name, defaults={"everyone": True})
    member = User.objects.create_user(username="discoverer", password=PASSWORD)
    User.objects.create_user(username="ops-reader", password=PASSWORD, is_staff=True)
    version = config_get(RANKER_POLICY).version
    refused = offline(page, live_server.url)

    # Pick interests and save them: the suggestions that follow are the member's own.
    sign_in_form(page, "discoverer", PASSWORD, next_path="/discover")
    expect(page).to_have_url(f"{live_server.url}/discover")
    expect(page.get_by_test_id("nav-discover")).to_have_attribute("aria-current", "page")
    page.get_by_test_id("interest-check-ai").check()
    page.get_by_test_id("interest-level-ai").select_option(label="A lot")
    page.get_by_test_id("interest-check-fintech").check()
    with page.expect_response(lambda r: "/api/discovery/suggestions" in r.url) as answered:
        page.get_by_test_id("interests-save").click()
    expect(page.get_by_test_id("interests-status")).to_have_text("Saved 2 interests.")
    served = answered.value.json()
    assert served["personal"] is True and served["decision_id"], served

    items = page.get_by_test_id("suggestion")
    expect(items).to_have_count(len(served["items"]))
    expect(page.get_by_test_id("suggestions-summary")).to_contain_text("picked for your interests")
    first, second = items.nth(0), items.nth(1)
    assert first.get_attribute("data-candidate-id") == str(served["items"][0]["id"])

    # Open the first (the item the decision led with) and save the second.
    first.get_by_test_id("suggestion-open").click()
    expect(first.get_by_test_id("suggestion-done")).to_contain_text("Opened")
    second.get_by_test_id("suggestion-save").click()
    expect(second.get_by_test_id("suggestion-save")).to_have_text("Saved")

    # The member's signal is recorded with its decision, and the reward joined to it.
    signals = page.request.get("/api/discovery/me/signals").json()["results"]
    click = next(s for s in signals if s["kind"] == "click")
    assert click["candidate"] == served["items"][0]["id"] and click["decision_id"] == served["decision_id"]
    assert {s["kind"] for s in signals} == {"click", "save"}
    decision = page.request.get(f"/api/discovery/me/decisions/{served['decision_id']}").json()
    assert decision["reward"] == 1.0 and decision["chosen"] == served["items"][0]["id"], decision
    assert IntentSignal.objects.filter(user=member).count() == 2
    assert LearningEvent.objects.filter(user=member, reward=1.0).count() == 1

    # Too many requests reads as such on the page (the member's suggest bucket: 1 a minute now).
    settings.DISCOVERY_RATE_SUGGEST = "1/min"
    page.get_by_test_id("suggestions-refresh").click()
    expect(page.get_by_test_id("suggestions-error")).to_contain_text("Too many requests")
    expect(page.get_by_test_id("suggestions-retry")).to_be_visible()
    _sign_out(page)

    # Staff see the rewarded decision in policy health, for the current policy version.
    sign_in_form(page, "ops-reader", PASSWORD, next_path="/ops/discovery")
    expect(page).to_have_url(f"{live_server.url}/ops/discovery")
    health = page.request.get("/api/staff/discovery/policy-health")
    assert health.status == 200, health.text()
    versions = {v["version"]: v for v in health.json()["versions"]}
    decisions = LearningEvent.objects.filter(policy_version=version).count()
    assert versions[version]["rewarded"] == 1 and versions[version]["decisions"] == decisions, versions
    row = page.get_by_test_id(f"policy-version-{version}")
    expect(row.get_by_test_id("rewarded")).to_have_text("1")
    expect(row.get_by_test_id("decisions")).to_have_text(str(decisions))

    assert refused == [], f"the pages asked for files outside the site: {refused}"
