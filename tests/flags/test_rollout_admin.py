"""The rollout admin: create with stages and gates checked (errors named), one-click buttons
that call the services, the decision timeline and the history."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import clear_url_caches, reverse

from flags.models import Flag
from flags.rollouts.models import Rollout
from flags.rollouts.states import RolloutState
from tests.flags.rollout_fakes import FakeComparative

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    clear_url_caches()
    user = django_user_model.objects.create_superuser(username="ops-admin", password="pw-admin-pass-1")
    client.force_login(user)
    return user


@pytest.fixture
def errors(fake_metrics):
    return fake_metrics("test.errors", FakeComparative(), comparative=True)


def _form(**overrides) -> dict:
    flag = Flag.objects.get_or_create(name="beta_feed", defaults={"percent": Decimal(0)})[0]
    data = {
        "name": "beta-feed",
        "flag": str(flag.pk),
        "stages": "[5, 25, 50]",
        "gates": '[{"metric": "test.errors", "max_lift": 0.1}]',
        "min_dwell_seconds": "600",
        "min_sample": "1000",
        "min_gate_sample": "100",
        "breaches_to_rollback": "2",
        "alpha": "0.05",
        "rollback_action": "percent_zero",
        "change_reason": "canary for the new feed",
    }
    return data | overrides


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stages", "[25, 5]", "Stage 2: 5 must be above the stage before (25)."),
        ("stages", "[]", "This field is required."),
        ("stages", "[5, 120]", "Stage 2: 120 is not a percentage in (0, 100]."),
        ("gates", '[{"metric": "test.nope", "op": "<", "threshold": 1}]', "unknown metric &#x27;test.nope&#x27;"),
        ("gates", '[{"metric": "test.errors", "op": "<", "threshold": 1}]', "takes only max_lift"),
        ("alpha", "1.5", "strictly between 0 and 1"),
    ],
)
def test_creating_with_bad_stages_or_gates_shows_the_error_on_the_field(client, staff, errors, field, value, message):
    response = client.post(reverse("admin:flags_rollout_add"), _form(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["adminform"].form.errors[field]
    assert not Rollout.objects.exists()


def test_start_advance_and_roll_back_are_one_click_each_with_a_timeline_and_history(client, staff, errors):
    response = client.post(reverse("admin:flags_rollout_add"), _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    rollout = Rollout.objects.get()
    assert (rollout.state, rollout.created_by) == (RolloutState.DRAFT, staff)
    change = reverse("admin:flags_rollout_change", args=[rollout.pk])
    act = reverse("admin:flags_rollout_act", args=[rollout.pk])

    page = client.get(change).content.decode()
    assert '<button type="submit" name="action" value="start"' in page and ">Start</button>" in page
    assert ">Roll back</button>" not in page  # a draft has nothing to roll back

    response = client.post(act, {"action": "start", "reason": "go"}, follow=True)
    assert "Start: the rollout is running at 5 %." in response.content.decode()
    assert Flag.objects.get(name="beta_feed").percent == 5
    page = response.content.decode()
    for label in ("Pause", "Advance", "Roll back"):
        assert f">{label}</button>" in page

    client.post(act, {"action": "advance"})
    assert Flag.objects.get(name="beta_feed").percent == 25

    response = client.post(act, {"action": "rollback", "reason": "errors up"}, follow=True)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert Flag.objects.get(name="beta_feed").percent == 0
    page = response.content.decode()
    assert "Decision timeline" in page
    assert page.index("errors up") < page.index("advanced by hand to 25 %") < page.index(">go<")
    assert ">Restart</button>" in page and ">Pause</button>" not in page

    # A refused move says why, and changes nothing.
    response = client.post(act, {"action": "pause"}, follow=True)
    assert "cannot pause from &#x27;rolled_back&#x27;" in response.content.decode()

    history = client.get(reverse("admin:flags_rollout_history", args=[rollout.pk])).content.decode()
    assert "canary for the new feed" in history and "rollback: errors up" in history
    assert "ops-admin" in history


def test_a_running_rollouts_configuration_is_read_only(client, staff, errors):
    client.post(reverse("admin:flags_rollout_add"), _form())
    rollout = Rollout.objects.get()
    client.post(reverse("admin:flags_rollout_act", args=[rollout.pk]), {"action": "start"})
    response = client.post(
        reverse("admin:flags_rollout_change", args=[rollout.pk]), _form(stages="[50, 75]"), follow=True
    )
    assert response.status_code == 200
    rollout.refresh_from_db()
    assert rollout.stages == [5, 25, 50]


def test_the_buttons_need_a_post(client, staff, errors):
    client.post(reverse("admin:flags_rollout_add"), _form())
    rollout = Rollout.objects.get()
    assert client.get(reverse("admin:flags_rollout_act", args=[rollout.pk])).status_code == 405


def test_the_lists_of_rollouts_and_decisions_render(client, staff, errors):
    client.post(reverse("admin:flags_rollout_add"), _form())
    rollout = Rollout.objects.get()
    client.post(reverse("admin:flags_rollout_act", args=[rollout.pk]), {"action": "start", "reason": "go"})
    page = client.get(reverse("admin:flags_rollout_changelist")).content.decode()
    assert "beta-feed" in page and "1 of 3 (5 %)" in page and "start: go" in page
    page = client.get(reverse("admin:flags_rolloutdecision_changelist") + f"?rollout__id__exact={rollout.pk}")
    assert page.status_code == 200 and "go" in page.content.decode()


def test_the_timeline_keeps_every_move_and_only_the_latest_holds(client, staff, errors):
    from flags.rollouts.controller import rollouts_tick
    from flags.rollouts.selectors import rollout_timeline
    from flags.rollouts.services import rollout_start
    from tests.flags.rollout_fakes import T0, at

    client.post(reverse("admin:flags_rollout_add"), _form(min_dwell_seconds="100000"))
    rollout = Rollout.objects.get()
    rollout_start(rollout_id=rollout.pk, now=T0, reason="go")
    errors.set(t=(600, 12), c=(11400, 228))
    for n in range(1, 41):
        rollouts_tick(now=at(n))  # 40 holds (the dwell)
    timeline = rollout_timeline(rollout_id=rollout.pk)
    assert [d.decision for d in timeline][-1] == "start"
    assert sum(d.decision == "hold" for d in timeline) == 20
    assert timeline[0].decided_at == at(40)
    page = client.get(reverse("admin:flags_rollout_change", args=[rollout.pk])).content.decode()
    assert page.count('class="decision decision-hold"') == 20 and 'class="decision decision-start"' in page


def test_an_action_on_a_malformed_or_unknown_rollout_is_a_404(client, staff, errors):
    assert client.post("/admin/flags/rollout/abc/act/", {"action": "start"}).status_code == 404
    assert client.post("/admin/flags/rollout/999999/act/", {"action": "start"}).status_code == 404
