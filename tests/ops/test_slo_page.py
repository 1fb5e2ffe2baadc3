"""The ops page ``/ops/requests``: staff see the routes, the chart and the SLOs; nobody else does."""

from __future__ import annotations

import re
from datetime import UTC, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ops.slo.recorder import request_metrics_discard
from ops.slo.views import axis_ticks
from tests.support.request_minutes import route_minute_put

pytestmark = pytest.mark.django_db
PAGE = "/ops/requests"


@pytest.fixture(autouse=True)
def _empty_buffer():
    request_metrics_discard()
    yield
    request_metrics_discard()


def client_for(django_user_model, *, staff: bool) -> Client:
    user = django_user_model.objects.create_user(username=f"u-{staff}", password="pw-for-tests", is_staff=staff)
    client = Client()
    client.force_login(user)
    return client


def add(minute, route, *, count, errors=0, field="le_50", flag="", cohort=""):
    route_minute_put(route, minute=minute, count=count, errors=errors, buckets={field: count}, flag=flag, cohort=cohort)


def test_staff_see_each_routes_figures_the_chart_and_the_slos(django_user_model):
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0)
    add(minute - timedelta(minutes=3), "auth-login", count=40, errors=2, field="le_250")
    add(minute - timedelta(minutes=2), "matches", count=7, field="le_100")
    add(minute - timedelta(minutes=2), "matches", count=5, field="le_100", flag="ranker", cohort="treatment")
    add(minute - timedelta(hours=3), "auth-me", count=9)  # outside the hour

    response = client_for(django_user_model, staff=True).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    login = re.search(r'<tr data-route="auth-login">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num">40</td>' in login and "5.00 %" in login
    assert 'data-route="matches"' in html
    assert 'data-route="auth-me"' not in html
    assert "<svg" in html and 'data-testid="p95-line"' in html
    assert html.count('class="ops-chart__bar"') in (60, 61)
    assert 'data-value="40"' in html
    assert 'data-slo="login.availability"' in html
    # 2 errors of 40 sign-ins against a 1 % budget: 5x in both windows, but under the minimum sample?
    row = re.search(r'<tr data-slo="login.availability">(.*?)</tr>', html, re.S).group(1)
    assert "5.00x" in row and 'data-state="ok"' in row
    assert "ranker" in html and "treatment" in html
    # No request leaves for another site: the chart is drawn here.
    assert not re.search(r'(src|href)="https?://', html)


def test_the_page_renders_with_no_data_at_all(django_user_model):
    response = client_for(django_user_model, staff=True).get(PAGE)
    assert response.status_code == 200
    assert "No requests counted in the last hour." in response.content.decode()
    assert "not enough data" in response.content.decode()


def test_members_and_visitors_are_sent_to_the_admin_sign_in(django_user_model):
    member = client_for(django_user_model, staff=False).get(PAGE)
    visitor = Client().get(PAGE)
    for response in (member, visitor):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert Client().post(PAGE).status_code == 302


@pytest.mark.parametrize(("highest", "ticks"), [(0, [0, 1]), (7, [0, 2, 4, 6, 8]), (95, [0, 50, 100]), (0.4, [0, 1])])
def test_axis_ticks_cover_the_highest_value_in_round_steps(highest, ticks):
    assert axis_ticks(highest) == ticks
