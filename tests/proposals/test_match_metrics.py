"""The matches' business metrics: exact figures from matches placed in time, the staff API
and the staff page, and a query count that does not grow with the matches."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from proposals.matches import metrics as metrics_module
from proposals.matches.metrics import db_now, match_metrics, match_metrics_compute, window_start
from proposals.matches.services import event_match_create
from proposals.models import Event, FeedItem, Match
from proposals.views_ops import duration_text, nice_ticks
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

BUCKETS = ["0", "1", "2-4", "5-9", "10-19", "20+"]


@pytest.fixture
def clock():
    """Today's midnight (UTC) by the database's clock, and a moment today that has passed."""
    now = db_now()
    today = window_start(now, 1)
    return {"now": now, "today": today, "earlier_today": today + (now - today) / 2}


@pytest.fixture
def people(django_user_model):
    def make(prefix: str, count: int):
        return [django_user_model.objects.create_user(username=f"{prefix}{i}") for i in range(count)]

    return make


def place(
    a,
    b,
    *,
    created: datetime,
    status: str = "pending",
    decided: datetime | None = None,
    answered_a: float | None = None,
    answered_b: float | None = None,
    event: Event | None = None,
) -> Match:
    """A match made through the service, then put in time: created at ``created``, answered
    ``answered_*`` seconds later, decided at ``decided`` with ``status``."""
    if event is None:
        event = EventFactory(name="Meetup", starts_at=created, ends_at=created)
    match = event_match_create(event=event, member_a=a, member_b=b, compatibility=0.5)
    Match.objects.filter(pk=match.pk).update(
        created_at=created,
        status=status,
        decided_at=decided,
        responded_at_a=None if answered_a is None else created + timedelta(seconds=answered_a),
        responded_at_b=None if answered_b is None else created + timedelta(seconds=answered_b),
    )
    FeedItem.objects.filter(match=match).update(status=status, created_at=created)
    return match


def at(clock, days_ago: int, hours: float = 0.0) -> datetime:
    return clock["today"] - timedelta(days=days_ago) + timedelta(hours=hours)


def day_text(clock, days_ago: int) -> str:
    return (clock["today"] - timedelta(days=days_ago)).date().isoformat()


@pytest.fixture
def finished_world(clock, people):
    """Matches decided at known moments, in and out of the 30-day window."""
    m = people("f", 20)
    # Expired: today, twice two days ago (one with an answer), five days ago, and at the
    # very first instant of the 30-day window; one a second before it.
    place(m[0], m[1], created=at(clock, 8, 1), status="expired", decided=clock["earlier_today"])
    place(m[2], m[3], created=at(clock, 9), status="expired", decided=at(clock, 2, 10), answered_a=1800)
    place(m[4], m[5], created=at(clock, 9), status="expired", decided=at(clock, 2, 15))
    place(m[6], m[7], created=at(clock, 12), status="expired", decided=at(clock, 5, 12))
    place(m[8], m[9], created=at(clock, 36), status="expired", decided=at(clock, 29))
    last_second_before = at(clock, 29) - timedelta(seconds=1)
    place(m[10], m[11], created=at(clock, 37), status="expired", decided=last_second_before, answered_b=99_999)
    # Accepted six days ago (answers after 1 h and 2 h); turned down four days ago (10 min).
    accepted = {"status": "accepted", "answered_a": 3600, "answered_b": 7200}
    place(m[12], m[13], created=at(clock, 6, 10), decided=at(clock, 6, 12), **accepted)
    rejected = {"status": "rejected", "answered_b": 600}
    place(m[14], m[15], created=at(clock, 4, 8), decided=at(clock, 4, 8) + timedelta(seconds=600), **rejected)
    # Outside every window: accepted 40 days ago. Still open: a pending match with an answer.
    place(m[16], m[17], created=at(clock, 41), status="accepted", decided=at(clock, 40), answered_a=50, answered_b=70)
    place(m[18], m[19], created=at(clock, 1), answered_a=5)
    return m


def test_expired_per_day_has_every_day_of_the_window_with_zeros(clock, finished_world):
    figures = match_metrics(days=30)
    series = figures["expired_per_day"]
    assert [d["date"] for d in series] == [day_text(clock, n) for n in range(29, -1, -1)]
    expected = {day_text(clock, 0): 1, day_text(clock, 2): 2, day_text(clock, 5): 1, day_text(clock, 29): 1}
    assert {d["date"]: d["expired"] for d in series} == {d["date"]: expected.get(d["date"], 0) for d in series}
    assert sum(d["expired"] for d in series) == 5
    assert figures["days"] == 30
    assert figures["window"]["start"] == (clock["today"] - timedelta(days=29)).isoformat()


def test_outcomes_rate_and_average_answer_time_over_the_window(finished_world):
    figures = match_metrics(days=30)
    assert figures["finished"] == {"accepted": 1, "rejected": 1, "expired": 5, "total": 7}
    assert figures["expiration_rate"] == round(5 / 7, 4)
    # 1800 (expired, one side answered) + 3600 + 7200 (accepted) + 600 (rejected), over 4 answers;
    # the match decided a second before the window and the pending one are not in it.
    assert figures["responses"] == 4
    assert figures["avg_response_seconds"] == 3300.0


def test_a_shorter_window_leaves_older_matches_out(clock, finished_world):
    week = match_metrics(days=7)
    assert len(week["expired_per_day"]) == 7
    assert [d["expired"] for d in week["expired_per_day"]] == [0, 1, 0, 0, 2, 0, 1]
    assert week["finished"] == {"accepted": 1, "rejected": 1, "expired": 4, "total": 6}
    assert week["expiration_rate"] == round(4 / 6, 4)
    assert week["avg_response_seconds"] == (1800 + 3600 + 7200 + 600) / 4

    today = match_metrics(days=1)
    assert today["expired_per_day"] == [{"date": day_text(clock, 0), "expired": 1}]
    assert today["finished"] == {"accepted": 0, "rejected": 0, "expired": 1, "total": 1}
    assert today["expiration_rate"] == 1.0
    assert today["avg_response_seconds"] is None
    assert today["responses"] == 0


def test_nothing_finished_means_no_rate_and_no_average(clock):
    figures = match_metrics(days=30)
    assert figures["finished"]["total"] == 0
    assert figures["expiration_rate"] is None
    assert figures["avg_response_seconds"] is None
    assert [d["expired"] for d in figures["expired_per_day"]] == [0] * 30
    assert figures["mutual_connections"]["sample_size"] == 0
    assert [b["matches"] for b in figures["mutual_connections"]["buckets"]] == [0] * 6


@pytest.fixture
def graph(clock, people):
    """Pairs p[k]-q[k] created yesterday that share exactly k connections (k = 0, 1, 3, 5,
    12, 20), through accepted matches made long ago, with distractions that must not count."""
    hubs = people("hub", 20)
    long_ago = at(clock, 400)

    def connect(a, b, *, status="accepted", event=None):
        place(a, b, created=long_ago, status=status, decided=long_ago, event=event)

    pairs = {}
    for k in (0, 1, 3, 5, 12, 20):
        p, q = people(f"p{k}-", 1)[0], people(f"q{k}-", 1)[0]
        for hub in hubs[:k]:
            connect(p, hub)
            connect(q, hub)
        pairs[k] = (p, q)
    p0, p1, (p3, q3), (p5, q5) = pairs[0][0], pairs[1][0], pairs[3], pairs[5]
    # Only one side connected: not mutual.
    connect(p0, hubs[19])
    # Connected twice to the same member (two events): counted once.
    connect(p1, hubs[0], event=EventFactory(name="Second", starts_at=long_ago, ends_at=long_ago))
    # Both sides matched with a member, but not accepted: not connections.
    for status in ("rejected", "expired", "pending"):
        other = people(f"x{status}-", 1)[0]
        connect(p3, other, status=status)
        connect(q3, other, status=status)
    # The pair's own earlier connection to each other is no mutual connection.
    connect(p5, q5)
    # A match between a well-connected pair, created before the window: not sampled.
    old = EventFactory(name="Old", starts_at=long_ago, ends_at=long_ago)
    place(*pairs[20], created=at(clock, 45), event=old)
    for k in (0, 1, 3, 5, 12, 20):
        place(*pairs[k], created=at(clock, 1, k / 10))
    return pairs


def test_mutual_connections_are_counted_into_their_buckets(graph):
    mutual = match_metrics(days=30)["mutual_connections"]
    assert mutual["sample_size"] == 6
    assert mutual["sample_limit"] == 1000
    assert [(b["label"], b["matches"]) for b in mutual["buckets"]] == [(label, 1) for label in BUCKETS]
    assert [(b["min"], b["max"]) for b in mutual["buckets"]] == [(0, 0), (1, 1), (2, 4), (5, 9), (10, 19), (20, None)]


def test_the_mutual_sample_is_the_newest_matches(graph, monkeypatch):
    monkeypatch.setattr(metrics_module, "MUTUAL_SAMPLE_SIZE", 2)
    mutual = match_metrics_compute(days=30)["mutual_connections"]
    assert mutual["sample_size"] == 2
    assert mutual["sample_limit"] == 2
    assert [b["matches"] for b in mutual["buckets"]] == [0, 0, 0, 0, 1, 1]


def test_the_figures_are_cached_for_a_minute_per_window(finished_world, people, clock):
    first = match_metrics(days=30)
    m = people("late", 2)
    place(m[0], m[1], created=at(clock, 3), status="expired", decided=at(clock, 1))
    with CaptureQueriesContext(connection) as queries:
        assert match_metrics(days=30) == first
    assert len(queries) == 0
    assert match_metrics(days=7)["finished"]["expired"] == 5  # another window, computed afresh
    assert match_metrics_compute(days=30)["finished"]["expired"] == 6


def test_the_query_count_does_not_grow_with_the_matches(clock, people):
    def queries_for_metrics() -> int:
        with CaptureQueriesContext(connection) as queries:
            match_metrics_compute(days=30)
        return len(queries)

    def add(count: int, prefix: str) -> None:
        m = people(prefix, count + 1)
        statuses = ["expired", "accepted", "rejected", "pending"]
        for i in range(count):
            status = statuses[i % 4]
            decided = None if status == "pending" else at(clock, i % 20, 6)
            place(m[i], m[i + 1], created=at(clock, i % 20 + 1), status=status, decided=decided, answered_a=60)

    add(2, "a")
    few = queries_for_metrics()
    add(40, "b")
    many = queries_for_metrics()
    assert few == many == 3


def test_days_must_be_a_whole_number_from_1_to_365():
    from matchplatform.exceptions import InvalidInput

    for bad in (0, 366, -1, True):
        with pytest.raises(InvalidInput):
            match_metrics_compute(days=bad)


# -- the API -------------------------------------------------------------------------------
URL = "/api/matches/metrics"


def test_staff_get_the_figures(staff_client, finished_world):
    response = staff_client.get(URL, {"days": 30})
    assert response.status_code == 200
    body = response.json()
    assert body["finished"] == {"accepted": 1, "rejected": 1, "expired": 5, "total": 7}
    assert body["avg_response_seconds"] == 3300.0
    assert len(body["expired_per_day"]) == 30
    assert staff_client.get(URL).json()["days"] == 30
    assert len(staff_client.get(URL, {"days": 365}).json()["expired_per_day"]) == 365


@pytest.mark.parametrize("days", ["0", "366", "-1", "1.5", "abc", "１２", "9999", " ", "", " 7", "+7"])
def test_bad_days_is_a_400_naming_the_parameter(staff_client, days):
    # Empty or padded too: the schema says an integer from 1 to 365 (leave it out for 30).
    response = staff_client.get(URL, {"days": days})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_parameter",
            "message": "days is a whole number from 1 to 365.",
            "fields": {"days": ["days is a whole number from 1 to 365."]},
        }
    }


def test_days_given_twice_or_unknown_parameters_are_400(staff_client):
    twice = staff_client.get(f"{URL}?days=7&days=30")
    assert twice.status_code == 400
    assert twice.json()["error"]["fields"] == {"days": ["Give days once."]}
    unknown = staff_client.get(URL, {"day": 7})
    assert unknown.status_code == 400
    assert set(unknown.json()["error"]["fields"]) == {"day"}


def test_members_who_are_not_staff_and_anonymous_callers_are_refused(django_user_model):
    member = django_user_model.objects.create_user(username="member")
    client = APIClient()
    client.force_authenticate(member)
    response = client.get(URL)
    assert response.status_code == 403
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == "permission_denied"

    anonymous = APIClient().get(URL)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"error"}


def test_the_metrics_route_is_not_taken_for_a_match_id(staff_client):
    assert staff_client.get(URL).status_code == 200
    assert staff_client.get("/api/matches/metrics/").status_code == 404  # a match id "metrics": none such


def test_the_schema_documents_the_endpoint(staff_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/matches/metrics"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["days"]
    assert {"200", "400", "403"} <= set(operation["responses"])


# -- the page --------------------------------------------------------------------------------
PAGE = "/ops/matches"


@pytest.fixture
def staff_browser(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="operator", is_staff=True))
    return client


def test_staff_see_the_charts_and_the_tables_with_the_numbers(staff_browser, finished_world, graph, clock):
    response = staff_browser.get(PAGE, {"days": 30})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") == 2
    assert html.count('role="img"') == 2
    assert '<title id="expired-chart-title">' in html and '<desc id="expired-chart-desc">' in html
    assert '<title id="mutual-chart-title">' in html and '<desc id="mutual-chart-desc">' in html
    # One bar per day, each with its value; zero days too.
    assert html.count('class="ops-chart__bar"') == 30 + 6
    assert f"<title>{day_text(clock, 2)}: 2 expired</title>" in html
    assert f"<title>{day_text(clock, 3)}: 0 expired</title>" in html
    # The tables carry the same numbers.
    assert f'<tr><th scope="row">{day_text(clock, 2)}</th><td class="num">2</td></tr>' in html
    assert f'<tr><th scope="row">{day_text(clock, 1)}</th><td class="num">0</td></tr>' in html
    assert '<tfoot><tr><th scope="row">Total</th><td class="num">5</td></tr></tfoot>' in html
    # The sample: the six graph pairs and the seven matches of the finished world created in
    # the window, whose members share nobody.
    assert '<tr><th scope="row">0</th><td class="num">8</td><td class="num">61.5 %</td></tr>' in html
    for label in BUCKETS[1:]:
        assert f'<tr><th scope="row">{label}</th><td class="num">1</td><td class="num">7.7 %</td></tr>' in html
    assert '<tfoot><tr><th scope="row">Sampled</th><td class="num">13</td>' in html
    # The summary: rate, answer time in words, outcomes.
    assert 'data-testid="expiration-rate">71.4 %<' in html
    assert 'data-testid="avg-response">55 min<' in html
    assert 'data-testid="finished-accepted">1<' in html
    assert 'data-testid="finished-rejected">1<' in html
    assert 'data-testid="finished-expired">5<' in html
    assert 'data-testid="finished-total">7<' in html
    assert 'href="?days=30" aria-current="page"' in html


def test_the_page_follows_the_days_selector(staff_browser, finished_world):
    html = staff_browser.get(PAGE, {"days": 7}).content.decode()
    assert html.count('class="ops-chart__bar"') == 7 + 6
    assert 'data-testid="finished-total">6<' in html
    assert 'href="?days=7" aria-current="page"' in html
    default = staff_browser.get(PAGE)
    assert default.status_code == 200
    assert default.content.decode().count('class="ops-chart__bar"') == 30 + 6


def test_a_bad_window_on_the_page_is_a_400_that_says_why(staff_browser):
    response = staff_browser.get(PAGE, {"days": "400"})
    assert response.status_code == 400
    assert "days is a whole number from 1 to 365." in response.content.decode()


def test_the_page_is_for_staff_only(client, django_user_model):
    anonymous = client.get(PAGE)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    client.force_login(django_user_model.objects.create_user(username="member"))
    member = client.get(PAGE)
    assert member.status_code == 302
    assert member["Location"].startswith("/admin/login/")
    assert "<svg" not in member.content.decode()


def test_people_read_durations_and_axes():
    assert duration_text(None) == "no answers yet"
    assert duration_text(42.4) == "42 s"
    assert duration_text(3300) == "55 min"
    assert duration_text(3725) == "1 h 2 min"
    assert duration_text(2 * 86400 + 4 * 3600 + 59) == "2 d 4 h"
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(13) == [0, 5, 10, 15]
    assert nice_ticks(1000)[-1] >= 1000
