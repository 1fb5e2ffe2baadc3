"""Sticky percentage rollouts: the bucket function, its spread, and one answer for a unit
wherever the flag is read (a web request through waffle, a Celery task, a command)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.core.management import call_command
from django.test import RequestFactory
from waffle import flag_is_active

from flags.models import Flag
from flags.services import UNIT_COOKIE, flag_enabled, murmur3_32, rollout_bucket, unit_in_rollout
from flags.tasks import flag_evaluate
from proposals.identity.services import member_create

# Published MurmurHash3 x86_32 results (seed 0, UTF-8), as in the reference implementation's
# and Unleash's SDKs' test suites.
VECTORS = {
    "": 0x00000000,
    "a": 0x3C2569B2,
    "abc": 0xB3DD93FA,
    "Hello, world!": 0xC0363E43,
    "The quick brown fox jumps over the lazy dog": 0x2E4FF723,
}


@pytest.mark.parametrize(("text", "expected"), VECTORS.items())
def test_the_hash_is_murmur3_x86_32(text, expected):
    assert murmur3_32(text) == expected


def test_a_bucket_is_the_hash_of_group_colon_unit_mod_100_plus_1_in_1_to_100():
    assert rollout_bucket(group="ab", unit="c") == murmur3_32("ab:c") % 100 + 1
    buckets = {rollout_bucket(group="checkout", unit=str(i)) for i in range(5000)}
    assert buckets == set(range(1, 101))


@pytest.mark.parametrize("percent", [5, 25, 50])
def test_100k_units_land_within_one_point_of_the_percentage(percent):
    flag = Flag(name="spread", percent=Decimal(percent))
    inside = sum(unit_in_rollout(flag, unit=str(unit)) for unit in range(100_000))
    assert abs(inside / 100_000 * 100 - percent) <= 1.0


def test_raising_the_percentage_never_removes_a_unit():
    units = [str(u) for u in range(20_000)]
    previous: set[str] = set()
    for percent in (1, 5, 25, 50, 99.9):
        flag = Flag(name="ramp", percent=Decimal(str(percent)))
        now = {u for u in units if unit_in_rollout(flag, unit=u)}
        assert previous <= now
        previous = now
    assert len(previous) > 19_000


def test_the_group_decides_the_cohort_not_the_flag_name():
    one = Flag(name="one", percent=Decimal(30), rollout_group="shared")
    two = Flag(name="two", percent=Decimal(30), rollout_group="shared")
    other = Flag(name="three", percent=Decimal(30))
    units = [str(u) for u in range(2000)]
    assert [unit_in_rollout(one, unit=u) for u in units] == [unit_in_rollout(two, unit=u) for u in units]
    assert [unit_in_rollout(one, unit=u) for u in units] != [unit_in_rollout(other, unit=u) for u in units]


@pytest.mark.django_db
def test_a_request_a_task_and_a_command_agree_for_every_member(client):
    Flag.objects.create(name="beta_feed", percent=Decimal(30))
    members = [member_create(username=f"unit{i:02d}", password="pw-unit-pass") for i in range(40)]
    answers = set()
    for member in members:
        expected = rollout_bucket(group="beta_feed", unit=str(member.pk)) <= 30
        in_process = flag_enabled("beta_feed", user=member)
        client.force_login(member)
        over_http = client.get("/api/flags").json()["beta_feed"]
        # The task's body as a worker runs it (.apply() would also start this process's
        # eager-mode heartbeat, ops.signals, which outlives the test).
        by_task = flag_evaluate.run("beta_feed", user_id=member.pk)
        out = io.StringIO()
        call_command("flag_check", "beta_feed", "--user", str(member.pk), stdout=out)
        by_command = out.getvalue().startswith("beta_feed: on")
        assert in_process == over_http == by_task == by_command == expected, member.pk
        answers.add(expected)
    assert answers == {True, False}  # both sides of the rollout were checked


@pytest.mark.django_db
def test_an_anonymous_visitor_keeps_one_unit_in_a_cookie(client):
    Flag.objects.create(name="anon_banner", percent=Decimal(50))
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    first = flag_is_active(request, "anon_banner")
    unit = request.rollout_unit
    assert request.rollout_unit_new is True
    assert first == (rollout_bucket(group="anon_banner", unit=unit) <= 50)
    again = RequestFactory().get("/", HTTP_COOKIE=f"{UNIT_COOKIE}={signed_unit(unit)}")
    again.user = AnonymousUser()
    assert flag_is_active(again, "anon_banner") == first
    assert not getattr(again, "rollout_unit_new", False)
    assert flag_enabled("anon_banner", unit=unit) == first
    # A unit the client made up (not signed by us) is no unit: it gets one of ours.
    forged = RequestFactory().get("/", HTTP_COOKIE=f"{UNIT_COOKIE}={unit}")
    forged.user = AnonymousUser()
    flag_is_active(forged, "anon_banner")
    assert forged.rollout_unit_new is True and forged.rollout_unit != unit


def signed_unit(unit: str) -> str:
    """The cookie's value as RolloutUnitMiddleware signs it."""
    from django.http import HttpResponse

    from flags.services import UNIT_COOKIE_SALT

    response = HttpResponse()
    response.set_signed_cookie(UNIT_COOKIE, unit, salt=UNIT_COOKIE_SALT)
    return response.cookies[UNIT_COOKIE].value


@pytest.mark.django_db
def test_the_middleware_sets_the_unit_cookie_once(client, settings):
    Flag.objects.create(name="anon_page", percent=Decimal(50))
    settings.ROOT_URLCONF = "tests.flags.urls"
    first = client.get("/flag/anon_page")
    assert UNIT_COOKIE in first.cookies
    cookie = first.cookies[UNIT_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    second = client.get("/flag/anon_page")  # the client sends the cookie back
    assert UNIT_COOKIE not in second.cookies
    assert second.content == first.content
    from flags.services import unit_cookie_read

    back = RequestFactory().get("/", HTTP_COOKIE=f"{UNIT_COOKIE}={cookie.value}")
    unit = unit_cookie_read(back)  # signed by us
    assert unit is not None and len(unit) == 32 and cookie.value != unit


@pytest.mark.django_db
def test_waffles_own_rules_still_work():
    member = member_create(username="ruled", password="pw-ruled-pass")
    other = member_create(username="unruled", password="pw-unruled-pass")
    testers = Group.objects.create(name="testers")
    by_user = Flag.objects.create(name="by_user")
    by_user.users.add(member)
    by_group = Flag.objects.create(name="by_group")
    by_group.groups.add(testers)
    Flag.objects.create(name="for_everyone", everyone=True)
    Flag.objects.create(name="for_nobody", everyone=False, percent=Decimal("99.9"))
    Flag.objects.create(name="testing_only", testing=True)

    def asks(user, path="/"):
        request = RequestFactory().get(path)
        request.user = user
        return request

    assert flag_is_active(asks(member), "by_user") and not flag_is_active(asks(other), "by_user")
    other.groups.add(testers)
    assert flag_is_active(asks(other), "by_group") and not flag_is_active(asks(member), "by_group")
    assert flag_is_active(asks(AnonymousUser()), "for_everyone")
    assert not flag_is_active(asks(member), "for_nobody")  # everyone=False wins over any percentage
    assert flag_is_active(asks(member, "/?dwft_testing_only=1"), "testing_only")
    assert not flag_is_active(asks(member), "testing_only")
    assert flag_enabled("by_user", user=member) and not flag_enabled("by_user", user=AnonymousUser())
    assert flag_enabled("by_group", user=other) and flag_enabled("for_everyone")
    assert not flag_enabled("for_nobody", user=member) and not flag_enabled("missing_flag", user=member)


@pytest.mark.django_db
def test_safe_mode_wins_where_a_flag_declares_a_safe_value():
    from waffle.testutils import override_switch

    from flags.names import SAFE_MODE

    member = member_create(username="safe", password="pw-safe-pass")
    Flag.objects.create(name="risky", everyone=True, safe_value=False)
    Flag.objects.create(name="plain", everyone=True)
    request = RequestFactory().get("/")
    request.user = member
    assert flag_enabled("risky", user=member) and flag_is_active(request, "risky")
    with override_switch(SAFE_MODE, active=True):
        assert not flag_enabled("risky", user=member)
        assert not flag_is_active(request, "risky")
        assert flag_enabled("plain", user=member)  # no safe value declared: safe mode leaves it alone


@pytest.mark.django_db
def test_a_percentage_of_100_is_everyone_and_over_100_is_refused():
    from flags.services import flag_percent_set
    from matchplatform.exceptions import InvalidInput

    Flag.objects.create(name="all_in", percent=Decimal(5))
    flag_percent_set("all_in", 100, reason="last stage")
    assert all(flag_enabled("all_in", unit=f"u{i}") for i in range(2000))
    with pytest.raises(InvalidInput):
        flag_percent_set("all_in", Decimal("100.1"), reason="too far")
