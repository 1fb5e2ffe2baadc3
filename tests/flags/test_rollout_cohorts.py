"""Cohorts on the request path (from the snapshot: no query per request), exposures written
in batches once per unit and stage, staff and bots kept out, and the rollouts on /metrics."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from flags.models import Flag
from flags.rollouts.cohorts import request_cohorts
from flags.rollouts.controller import rollouts_tick
from flags.rollouts.exposures import ExposureBuffer, exposure_buffer, exposures_flush
from flags.rollouts.metrics import rollout_metrics
from flags.rollouts.models import Rollout, RolloutDecision, RolloutExposure
from flags.rollouts.services import rollout_advance, rollout_create, rollout_pause, rollout_start
from flags.services import UNIT_COOKIE, rollout_bucket
from tests.flags.rollout_fakes import T0, FakeComparative, at
from tests.flags.test_rollout import signed_unit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_buffer(settings):
    settings.FLAGS_STAMP_CHECK_SECONDS = 60.0  # the loop below must not cross a stamp check
    settings.ROLLOUTS_EXPOSURE_FLUSH_THREAD = False
    exposure_buffer().discard()
    yield
    exposure_buffer().discard()


def _running(*, start: bool = True) -> Rollout:
    Flag.objects.create(name="beta_feed", percent=Decimal(0))
    rollout = rollout_create(name="beta-feed", flag="beta_feed", stages=[5, 25, 50], gates=[])
    if start:
        rollout_start(rollout_id=rollout.pk, now=T0)
        rollout.refresh_from_db()
    return rollout


def _request(unit: str, *, user=None, agent: str = "Mozilla/5.0"):
    request = RequestFactory().get("/", HTTP_USER_AGENT=agent)
    request.COOKIES[UNIT_COOKIE] = signed_unit(unit)
    request.user = user or AnonymousUser()
    return request


def test_each_request_gets_its_cohort_of_each_running_rollout_without_a_query(django_assert_num_queries):
    assert request_cohorts(_request("visitor-0")) == ()  # nothing running yet
    _running()
    request_cohorts(_request("visitor-0"))  # this process's snapshot reloads once (the stamp moved)
    with django_assert_num_queries(0):
        answers = {f"visitor-{i}": request_cohorts(_request(f"visitor-{i}")) for i in range(2000)}
    for unit, answer in answers.items():
        expected = "treatment" if rollout_bucket(group="beta_feed", unit=unit) <= 5 else "control"
        assert answer == (("beta_feed", expected),)
    treated = sum(a[0][1] == "treatment" for a in answers.values())
    assert 60 < treated < 140  # about 5 % of 2,000


def test_staff_and_known_bots_are_in_no_cohort(django_user_model):
    _running()
    staff = django_user_model.objects.create_user(username="ops-e", password="pw-e-pass-1", is_staff=True)
    member = django_user_model.objects.create_user(username="member-e", password="pw-e-pass-1")
    assert request_cohorts(_request("x", user=staff)) == ()
    assert request_cohorts(_request("x", agent="Mozilla/5.0 (compatible; Googlebot/2.1)")) == ()
    assert request_cohorts(_request("x", agent="Slackbot-LinkExpanding 1.0")) == ()
    # A member's unit is their id, whatever the cookie says.
    (pair,) = request_cohorts(_request("x", user=member))
    assert pair[1] == ("treatment" if rollout_bucket(group="beta_feed", unit=str(member.pk)) <= 5 else "control")
    exposures_flush()
    assert set(RolloutExposure.objects.values_list("unit", flat=True)) == {str(member.pk)}


def test_a_paused_or_draft_rollout_tags_nothing():
    rollout = _running(start=False)
    assert request_cohorts(_request("v")) == ()
    rollout_start(rollout_id=rollout.pk, now=T0)
    assert len(request_cohorts(_request("v"))) == 1
    rollout_pause(rollout_id=rollout.pk)
    assert request_cohorts(_request("v")) == ()


def test_exposures_are_written_once_per_unit_and_stage_from_every_process():
    rollout = _running()
    for _ in range(3):  # every unit comes back three times
        for i in range(500):
            request_cohorts(_request(f"visitor-{i}"))
    assert exposure_buffer().pending() == 500
    assert exposures_flush() == 500
    # Another process saw the same units: its rows conflict and are not written again.
    other = ExposureBuffer()
    for i in range(250, 750):
        other.note(rollout_id=rollout.pk, epoch=rollout.epoch, unit=f"visitor-{i}", treatment=False, percent=5)
    other.flush()
    rows = RolloutExposure.objects.filter(rollout=rollout, epoch=rollout.epoch)
    assert rows.count() == 750
    for unit, treatment, percent in rows.filter(unit__in=[f"visitor-{i}" for i in range(250)]).values_list(
        "unit", "treatment", "percent"
    ):
        assert treatment == (rollout_bucket(group="beta_feed", unit=unit) <= 5)
        assert percent == 5  # the probability of the assignment
    # The next stage is a new epoch: the same units are exposed again, under 25 %.
    rollout_advance(rollout_id=rollout.pk, now=at(20))
    request_cohorts(_request("visitor-1"))
    exposures_flush()
    assert RolloutExposure.objects.filter(rollout=rollout, epoch=rollout.epoch + 1).count() == 1


def test_real_exposures_pass_the_ratio_check(fake_metrics):
    errors = fake_metrics("test.errors", FakeComparative(), comparative=True)
    errors.set(t=(600, 12), c=(11400, 228))
    Flag.objects.create(name="beta_feed", percent=Decimal(0))
    rollout = rollout_create(
        name="beta-feed",
        flag="beta_feed",
        stages=[5, 25],
        gates=[{"metric": "test.errors"}],
        min_dwell_seconds=300,
        min_sample=500,
    )
    rollout_start(rollout_id=rollout.pk, now=T0)
    for i in range(4000):
        request_cohorts(_request(f"visitor-{i}"))
    exposures_flush()
    (result,) = rollouts_tick(now=at(11))
    assert result.decision == "advance", result.reason
    figures = RolloutDecision.objects.get(rollout=rollout, decision="advance").figures
    assert figures["srm"]["tested"] and not figures["srm"]["mismatch"]
    assert figures["srm"]["treatment_units"] + figures["srm"]["control_units"] == 4000


def _samples(families) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def test_rollouts_are_exported_on_metrics(client, django_user_model, monkeypatch):
    from ops import prometheus

    rollout = _running()
    rollout_advance(rollout_id=rollout.pk, now=at(1))
    samples = _samples(rollout_metrics())
    labels = (("flag", "beta_feed"), ("rollout", "beta-feed"))
    assert samples[("matchplatform_rollout_stage", labels)] == 1
    assert samples[("matchplatform_rollout_percent", labels)] == 25
    assert samples[("matchplatform_rollout_state", (*labels, ("state", "running")))] == 1
    assert samples[("matchplatform_rollout_state", (*labels, ("state", "paused")))] == 0
    decisions = (("decision", "advance"), ("rollout", "beta-feed"))
    assert samples[("matchplatform_rollout_decisions_total", decisions)] == 1
    # As flags.rollouts.rollouts_ready registers it (from FlagsConfig.ready).
    monkeypatch.setitem(prometheus._COLLECTORS, "flags.rollouts", rollout_metrics)
    client.force_login(django_user_model.objects.create_user(username="ops-m", password="pw-m-pass-1", is_staff=True))
    body = client.get("/metrics").content.decode()
    assert 'matchplatform_rollout_percent{flag="beta_feed",rollout="beta-feed"} 25.0' in body
    assert 'matchplatform_rollout_decisions_total{decision="start",rollout="beta-feed"} 1.0' in body


def test_only_a_unit_we_signed_and_got_back_is_an_exposure():
    _running()
    request = RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0")
    request.user = AnonymousUser()
    (pair,) = request_cohorts(request)  # a unit is minted for the tag...
    assert pair[0] == "beta_feed" and request.rollout_unit
    assert exposure_buffer().pending() == 0  # ...but it is no exposure until it comes back
    # A unit the client made up (its cookie not signed by us) is never one either.
    forged = RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0", HTTP_COOKIE=f"{UNIT_COOKIE}=made-up")
    forged.user = AnonymousUser()
    request_cohorts(forged)
    assert exposure_buffer().pending() == 0
    # The unit we signed, sent back: counted once.
    back = _request(request.rollout_unit)
    request_cohorts(back)
    request_cohorts(back)
    assert exposure_buffer().pending() == 1


def test_rollouts_ready_hooks_the_snapshot_the_metrics_and_the_beat_task(monkeypatch):
    from flags.rollouts import rollouts_ready
    from flags.snapshot import _SECTIONS
    from matchplatform.celery import app
    from ops import prometheus

    monkeypatch.setattr(prometheus, "_COLLECTORS", dict(prometheus._COLLECTORS))
    rollouts_ready()
    assert prometheus._COLLECTORS["flags.rollouts"] is rollout_metrics
    assert "rollouts.running" in _SECTIONS
    assert "flags.rollouts_tick" in app.tasks and "flags.rollouts_prune" in app.tasks


def test_a_member_a_rule_serves_is_in_no_cohort(django_user_model):
    """Listed members (or a group, staff, authenticated) get the flag whatever their bucket:
    they were not randomly assigned, so they are neither treatment nor control."""
    listed = django_user_model.objects.create_user(username="listed", password="pw-listed-pass")
    other = django_user_model.objects.create_user(username="other", password="pw-other-pass")
    _running()
    Flag.objects.get(name="beta_feed").users.add(listed)
    assert request_cohorts(_request("ignored", user=listed)) == ()
    (pair,) = request_cohorts(_request("ignored", user=other))
    bucket = rollout_bucket(group="beta_feed", unit=str(other.pk))
    assert pair == ("beta_feed", "treatment" if bucket <= 5 else "control")


def test_a_group_rule_costs_one_query_per_member_object_not_per_check(django_user_model, django_assert_num_queries):
    from django.contrib.auth.models import Group

    from flags.services import flag_enabled

    member = django_user_model.objects.create_user(username="grouped", password="pw-grouped-pass")
    testers = Group.objects.create(name="testers")
    member.groups.add(testers)
    flag = Flag.objects.create(name="for_testers")
    flag.groups.add(testers)
    flag_enabled("warm-up")  # the snapshot is loaded
    with django_assert_num_queries(1):
        assert all(flag_enabled("for_testers", user=member) for _ in range(100))
