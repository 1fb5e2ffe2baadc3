"""A staged rollout driven from the admin in a real browser (Debian's chromium, driven by
Playwright), against the live server: a staff member signs in on the admin's login page,
creates a rollout, starts it with one click, watches the controller advance it (the beat
task's body run here, in the test process: the live server shares the database), rolls it
back with one click and a reason, and reads the history. Every request that leaves the
live server is refused, as on a machine without internet."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

import flags.rollouts.admin  # noqa: F401  (registers the rollout admin; flags/admin.py imports it too)
from flags.models import Flag
from flags.rollouts.controller import rollouts_tick
from flags.rollouts.models import Rollout
from flags.rollouts.states import DecisionKind, RolloutState
from tests.flags.rollout_fakes import FakeComparative
from tests.test_pages_ui import offline

USERNAME = "rollout-operator"
PASSWORD = "correct horse battery staple"
FLAG = "beta_feed"


@pytest.fixture
def alerts(monkeypatch) -> list[dict]:
    """What the rollback asked ops.notify to send (the live server runs in this process)."""
    sent: list[dict] = []
    monkeypatch.setattr("ops.notify.alert_send", lambda **kw: sent.append(kw))
    return sent


def _sign_in(page: Page, live_server_url: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server_url}/admin/")


def _create_in_the_add_form(page: Page, *, flag_pk: int) -> None:
    page.goto("/admin/flags/rollout/add/")
    page.locator("#id_name").fill("beta-feed-canary")
    page.locator("#id_flag").select_option(str(flag_pk))
    page.locator("#id_stages").fill("[5, 25, 100]")
    page.locator("#id_gates").fill('[{"metric": "test.errors", "max_lift": 0.1}]')
    page.locator("#id_min_dwell_seconds").fill("0")
    page.locator("#id_min_sample").fill("500")
    page.locator("#id_min_gate_sample").fill("100")
    page.locator("#id_change_reason").fill("canary for the new feed")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_staff_member_starts_a_rollout_sees_it_advance_rolls_it_back_in_one_click_and_reads_the_history(
    page: Page, live_server, fake_metrics, alerts
):
    errors = fake_metrics("test.errors", FakeComparative(), comparative=True)
    User.objects.create_superuser(username=USERNAME, password=PASSWORD, email="ops@example.com")
    flag = Flag.objects.create(name=FLAG, percent=Decimal(0))
    refused = offline(page, live_server.url)

    _sign_in(page, live_server.url)

    # 1. Create it in the admin's add form; it is a draft, with its config as typed.
    _create_in_the_add_form(page, flag_pk=flag.pk)
    rollout = Rollout.objects.get()
    assert (rollout.name, rollout.state, rollout.stages) == ("beta-feed-canary", RolloutState.DRAFT, [5, 25, 100])
    assert rollout.gates == [{"metric": "test.errors", "max_lift": 0.1}]
    assert rollout.created_by is not None and rollout.created_by.username == USERNAME
    page.locator("#result_list").get_by_role("link", name="beta-feed-canary").click()
    expect(page).to_have_url(f"{live_server.url}/admin/flags/rollout/{rollout.pk}/change/")
    actions = page.locator("form.rollout-actions")
    expect(actions).to_contain_text("Draft")
    expect(actions.get_by_role("button", name="Roll back")).to_have_count(0)  # nothing to roll back yet
    expect(page.locator("#rollout-timeline")).to_contain_text("No decision yet.")

    # 2. Start: running at the first stage, 5 %.
    page.locator("#rollout-reason").fill("go for the canary")
    actions.get_by_role("button", name="Start").click()
    expect(page.locator(".messagelist")).to_contain_text("Start: the rollout is running at 5 %.")
    expect(actions).to_contain_text("Running")
    expect(actions).to_contain_text("stage 1 of 3; the flag serves 5 %")
    expect(actions.get_by_role("button", name="Start")).to_have_count(0)
    timeline = page.locator("#rollout-timeline")
    start_row = timeline.locator("tr.decision-start")
    expect(start_row).to_contain_text("go for the canary")
    expect(start_row).to_contain_text(USERNAME)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert Flag.objects.get(name=FLAG).percent == 5

    # 3. The controller advances it on good figures (no dwell, enough sample): 2 % errors
    # in the treatment as in the control. Nobody clicks Advance.
    errors.set(t=(600, 12), c=(11400, 228))
    (result,) = rollouts_tick()
    assert result.decision == DecisionKind.ADVANCE, result.reason
    assert errors.windows and errors.windows[-1].flag == FLAG  # it read the fake gate
    page.reload()
    expect(actions).to_contain_text("Running")
    expect(actions).to_contain_text("stage 2 of 3; the flag serves 25 %")
    advance_row = timeline.locator("tr.decision-advance")
    expect(advance_row).to_have_count(1)
    expect(advance_row).to_contain_text("stage 5 % passed, to 25 %")
    expect(advance_row).to_contain_text("test.errors")
    expect(advance_row).to_contain_text("controller")
    # Its figures, one click away: the gate's verdict and both cohorts' counts.
    advance_row.locator("summary", has_text="figures").click()
    figures = advance_row.locator("pre")
    expect(figures).to_be_visible()
    expect(figures).to_contain_text('"0:test.errors"')
    expect(figures).to_contain_text('"status": "pass"')
    expect(figures).to_contain_text('"treatment_n": 600')
    expect(figures).to_contain_text('"control_n": 11400')
    expect(timeline.locator("tbody tr").first).to_have_class(re.compile(r"\bdecision-advance\b"))
    assert Flag.objects.get(name=FLAG).percent == 25

    # 4. Roll back: one click, with a reason.
    page.locator("#rollout-reason").fill("errors up on the new feed")
    actions.get_by_role("button", name="Roll back").click()
    expect(page.locator(".messagelist")).to_contain_text("Roll back: the rollout is rolled back at 0 %.")
    expect(actions).to_contain_text("Rolled back")
    expect(actions).to_contain_text("the flag serves 0 %")
    expect(actions.get_by_role("button", name="Restart")).to_be_visible()
    expect(actions.get_by_role("button", name="Roll back")).to_have_count(0)
    newest = timeline.locator("tbody tr").first
    expect(newest).to_have_class(re.compile(r"\bdecision-rollback\b"))
    expect(newest).to_contain_text("errors up on the new feed")
    expect(newest).to_contain_text(USERNAME)
    expect(newest).to_contain_text(re.compile(r"\b0(\.0)? %"))
    # The whole story, newest first.
    rows = timeline.locator("tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("class") for i in range(3)] == [
        "decision decision-rollback",
        "decision decision-advance",
        "decision decision-start",
    ]
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert Flag.objects.get(name=FLAG).percent == 0
    decision = rollout.decisions.first()
    assert decision is not None and decision.decision == DecisionKind.ROLLBACK
    assert (decision.reason, decision.percent) == ("errors up on the new feed", 0)
    assert decision.actor_id == rollout.created_by_id
    # A rollback always notifies: once, saying who.
    assert [(a["state"], a["text"], a["fields"]["by"]) for a in alerts] == [
        ("rolled_back", "errors up on the new feed", USERNAME)
    ]

    # The flag itself, on its admin page: at 0 %.
    page.goto("/admin/flags/flag/")
    flag_row = page.locator("#result_list tbody tr", has_text=FLAG)
    expect(flag_row.locator("td.field-percent")).to_have_text(re.compile(r"^\s*0(\.0)?\s*$"))
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/admin/flags/rollout/{rollout.pk}/change/")

    # 5. The history: who, why, and what changed, for every change.
    page.locator(".object-tools").get_by_role("link", name="History", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/flags/rollout/{rollout.pk}/history/")
    history = page.locator("#change-history")
    expect(history.locator("tbody tr")).to_have_count(4)  # created, started, advanced, rolled back
    rolled_back = history.locator("tbody tr", has_text="rollback: errors up on the new feed")
    expect(rolled_back).to_have_count(1)
    expect(rolled_back).to_contain_text(USERNAME)
    expect(rolled_back).to_contain_text(re.compile(r"state:\s*running\s*→\s*rolled_back", re.I))
    advanced = history.locator("tbody tr", has_text="advance: stage 5 % passed, to 25 %")
    expect(advanced).to_have_count(1)
    expect(advanced).to_contain_text(re.compile(r"stage index:\s*0\s*→\s*1", re.I))
    expect(advanced).not_to_contain_text(USERNAME)  # the controller, not a person
    started = history.locator("tbody tr", has_text="start: go for the canary")
    expect(started).to_contain_text(USERNAME)
    expect(started).to_contain_text(re.compile(r"state:\s*draft\s*→\s*running", re.I))
    created = history.locator("tbody tr", has_text="canary for the new feed")
    expect(created).to_contain_text(USERNAME)
    expect(created).to_contain_text("Created")

    assert refused == [], f"the admin asked for files outside the site: {refused}"
