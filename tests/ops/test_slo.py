"""Request metrics: the middleware's counts per route and minute, the flush, percentiles from
the histogram, SLO burn rates, the rollout gates' cohort counts and the pruning."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection, connections
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from flags.gates import GateWindow, gate_metric_get, gate_metrics_all
from ops.invariants import invariant_evaluate, invariants_all
from ops.models import LATENCY_BOUNDS_MS, LATENCY_FIELDS, RouteMinute
from ops.slo import middleware as slo_middleware
from ops.slo.histogram import BUCKETS, bucket_index, histogram_count_above, histogram_percentile
from ops.slo.recorder import (
    RequestMetricsBuffer,
    request_metrics_buffer,
    request_metrics_discard,
    request_metrics_flush,
    request_metrics_record,
)
from ops.slo.selectors import cohort_stats, minute_series, request_stats, route_stats, slo_status
from ops.slo.services import route_minutes_add, route_minutes_prune
from ops.slo.slos import BURN_WINDOWS, slo_get, slos_all
from tests.support.request_minutes import now_minute
from tests.support.request_minutes import route_minute as delta


# -- a URLconf for these tests (pytest.mark.urls points here) ----------------------------------
def ok_view(request: HttpRequest, **kwargs: str) -> HttpResponse:
    return HttpResponse("ok")


def boom_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def unavailable_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("busy", status=503)


def slow_view(request: HttpRequest) -> HttpResponse:
    time.sleep(0.03)
    return HttpResponse("slow")


urlpatterns = [
    path("t/ok", ok_view, name="slo-ok"),
    path("t/ok/<str:item>", ok_view, name="slo-item"),
    path("t/boom", boom_view, name="slo-boom"),
    path("t/busy", unavailable_view, name="slo-busy"),
    path("t/slow", slow_view, name="slo-slow"),
]
URLS = pytest.mark.urls("tests.ops.test_slo")


@pytest.fixture(autouse=True)
def _empty_buffer():
    # The buffer is the process's: requests other tests made are not this test's.
    request_metrics_discard()
    yield
    request_metrics_discard()


def rows(**filters) -> dict[tuple[str, str, str], RouteMinute]:
    return {(r.route, r.flag, r.cohort): r for r in RouteMinute.objects.filter(**filters)}


# -- the middleware -----------------------------------------------------------------------------
@URLS
@pytest.mark.django_db
def test_the_middleware_counts_a_success_and_a_server_error_per_route_and_minute():
    client = Client(raise_request_exception=False)
    before = now_minute()
    assert client.get("/t/ok").status_code == 200
    assert client.get("/t/ok").status_code == 200
    assert client.get("/t/boom").status_code == 500
    assert client.get("/t/busy").status_code == 503
    assert RouteMinute.objects.count() == 0  # nothing written on the request path

    assert request_metrics_flush() == 3
    found = rows()
    assert set(found) == {("slo-ok", "", ""), ("slo-boom", "", ""), ("slo-busy", "", "")}
    assert (found["slo-ok", "", ""].count, found["slo-ok", "", ""].errors) == (2, 0)
    assert (found["slo-boom", "", ""].count, found["slo-boom", "", ""].errors) == (1, 1)
    assert (found["slo-busy", "", ""].count, found["slo-busy", "", ""].errors) == (1, 1)
    assert found["slo-ok", "", ""].minute >= before
    assert found["slo-ok", "", ""].minute.second == 0
    assert sum(found["slo-ok", "", ""].buckets()) == 2


@URLS
@pytest.mark.django_db
def test_a_second_flush_adds_to_the_same_row_instead_of_writing_another():
    client = Client()
    client.get("/t/ok")
    request_metrics_flush()
    client.get("/t/ok")
    client.get("/t/ok")
    request_metrics_flush()
    assert request_metrics_flush() == 0  # nothing left
    (row,) = RouteMinute.objects.filter(route="slo-ok")
    assert row.count == 3


@URLS
@pytest.mark.django_db
def test_a_slow_request_lands_in_its_latency_bucket():
    Client().get("/t/slow")
    request_metrics_flush()
    row = RouteMinute.objects.get(route="slo-slow")
    assert row.le_25 == row.le_5 == row.le_10 == 0
    assert row.le_50 + row.le_100 + row.le_250 == 1  # 30 ms of sleep, whatever the machine adds
    assert row.duration_ms_sum >= 30


@URLS
@pytest.mark.django_db
def test_hostile_paths_all_count_as_one_unmatched_route_never_a_row_per_path():
    client = Client()
    for n in range(60):
        client.get(f"/no/such/page/{n}/{'x' * n}")
    client.get("/..%2F..%2Fetc%2Fpasswd")
    client.get("/%00/x")  # answered 400 before the metrics middleware (NulCharactersMiddleware)
    client.get("/t/ok/" + "y" * 300)  # a matched route with a long argument is its name
    request_metrics_flush()
    found = rows()
    assert set(found) == {("unmatched", "", ""), ("slo-item", "", "")}
    assert found["unmatched", "", ""].count == 61
    assert all(len(route) <= 100 for route, _, _ in found)


@pytest.mark.django_db
def test_static_files_and_the_metrics_scrape_are_not_counted(client):
    client.get("/static/runs/app.css")
    client.get("/metrics")
    client.get("/favicon.ico")
    assert request_metrics_buffer().pending() == 0
    client.get("/api/health/live")
    assert request_metrics_buffer().pending() == 1


@URLS
@pytest.mark.django_db
def test_each_running_rollouts_cohort_gets_its_own_row_beside_the_total(monkeypatch):
    def cohorts(request):
        side = request.headers.get("X-Side", "")
        return (("new-ranker", side), ("other", "control")) if side else ()

    monkeypatch.setattr(slo_middleware, "request_cohorts", cohorts)
    client = Client(raise_request_exception=False)
    for _ in range(3):
        client.get("/t/ok", headers={"X-Side": "treatment"})
    client.get("/t/boom", headers={"X-Side": "treatment"})
    client.get("/t/ok", headers={"X-Side": "control"})
    client.get("/t/ok")  # in no rollout (staff, a bot)
    request_metrics_flush()

    found = rows(route="slo-ok")
    assert found["slo-ok", "", ""].count == 5
    assert found["slo-ok", "new-ranker", "treatment"].count == 3
    assert found["slo-ok", "new-ranker", "control"].count == 1
    assert found["slo-ok", "other", "control"].count == 4

    since, until = timezone.now() - timedelta(minutes=5), timezone.now() + timedelta(seconds=1)
    reading = gate_metric_get("http.error_rate").compute(GateWindow(flag="new-ranker", since=since, until=until))
    assert (reading.treatment.n, reading.treatment.events) == (4, 1)
    assert (reading.control.n, reading.control.events) == (1, 0)
    assert reading.value == pytest.approx(0.25)
    assert reading.sample == 5
    assert gate_metric_get("http.error_rate").comparative


@URLS
@pytest.mark.django_db
def test_a_failing_cohort_lookup_never_breaks_the_request_and_still_counts_it(monkeypatch):
    def broken(request):
        raise RuntimeError("snapshot unreadable")

    monkeypatch.setattr(slo_middleware, "request_cohorts", broken)
    assert Client().get("/t/ok").status_code == 200
    request_metrics_flush()
    assert set(rows()) == {("slo-ok", "", "")}


@URLS
@pytest.mark.django_db
def test_nonsense_from_the_cohort_lookup_is_not_recorded(monkeypatch):
    monkeypatch.setattr(
        slo_middleware, "request_cohorts", lambda request: (("f", "treatment"), ("f", "sideways"), ("", "control"))
    )
    Client().get("/t/ok")
    request_metrics_flush()
    assert set(rows()) == {("slo-ok", "", ""), ("slo-ok", "f", "treatment")}


# -- the histogram ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ms", "field"),
    [
        (0, "le_5"),
        (5, "le_5"),
        (5.01, "le_10"),
        (99.9, "le_100"),
        (100, "le_100"),
        (600, "le_1000"),
        (5000, "le_5000"),
        (5000.5, "le_inf"),
        (120_000, "le_inf"),
    ],
)
def test_a_duration_falls_in_the_first_bucket_whose_bound_is_at_least_it(ms, field):
    assert LATENCY_FIELDS[bucket_index(ms)] == field
    assert len(LATENCY_BOUNDS_MS) + 1 == BUCKETS


def counts(**by_field: int) -> list[int]:
    return [by_field.get(name, 0) for name in LATENCY_FIELDS]


def test_percentiles_are_interpolated_inside_their_bucket():
    # 50 requests in (5, 10] ms, 50 in (50, 100] ms.
    buckets = counts(le_10=50, le_100=50)
    assert histogram_percentile(buckets, 0.50) == pytest.approx(10.0)
    assert histogram_percentile(buckets, 0.25) == pytest.approx(7.5)
    assert histogram_percentile(buckets, 0.95) == pytest.approx(95.0)
    assert histogram_percentile(buckets, 0.99) == pytest.approx(99.0)
    assert histogram_percentile(buckets, 1.0) == pytest.approx(100.0)


def test_a_percentile_in_the_open_top_bucket_reads_as_its_lower_bound_and_nothing_is_none():
    assert histogram_percentile(counts(le_5=90, le_inf=10), 0.99) == 5000.0
    assert histogram_percentile(counts(le_5=10), 0.5) == pytest.approx(2.5)
    assert histogram_percentile(counts(), 0.5) is None


def test_requests_slower_than_a_bound_are_the_buckets_above_it():
    buckets = counts(le_500=7, le_1000=5, le_2500=3, le_inf=1)
    assert histogram_count_above(buckets, bound_ms=1000) == 4
    assert histogram_count_above(buckets, bound_ms=500) == 9
    with pytest.raises(ValueError, match="not a histogram bound"):
        histogram_count_above(buckets, bound_ms=600)


@pytest.mark.django_db
def test_route_figures_over_a_window_read_the_percentiles_of_the_summed_minutes():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute - timedelta(minutes=3), "matches", count=50, errors=1, buckets={"le_10": 50}),
            delta(minute - timedelta(minutes=2), "matches", count=50, errors=3, buckets={"le_100": 50}),
            delta(minute - timedelta(hours=2), "matches", count=1000, errors=1000, buckets={"le_inf": 1000}),
            delta(minute - timedelta(minutes=2), "matches", count=9, flag="f", cohort="treatment"),
        ]
    )
    until = timezone.now()
    stats = route_stats(since=until - timedelta(hours=1), until=until)["matches"]
    assert (stats.count, stats.errors) == (100, 4)
    assert stats.error_rate == pytest.approx(0.04)
    assert (stats.p50, stats.p95, stats.p99) == (pytest.approx(10.0), pytest.approx(95.0), pytest.approx(99.0))
    series = minute_series(since=until - timedelta(minutes=10), until=until)
    assert len(series) in (10, 11)
    assert [s.count for _, s in series if s.count] == [50, 50]


# -- the flush ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_database_error_while_flushing_keeps_the_counts_for_the_next_try():
    request_metrics_record(route="matches", duration_ms=12, status=200)
    request_metrics_record(route="matches", duration_ms=12, status=502)

    def refuse(execute, sql, params, many, context):
        raise OperationalError("the database went away")

    with connection.execute_wrapper(refuse):
        assert request_metrics_flush() == 0
    assert request_metrics_buffer().pending() == 1
    assert not RouteMinute.objects.exists()  # and this connection's transaction still works

    request_metrics_record(route="matches", duration_ms=12, status=200)
    assert request_metrics_flush() == 1
    row = RouteMinute.objects.get(route="matches")
    assert (row.count, row.errors, row.le_25) == (3, 1, 3)


def test_the_buffer_is_bounded_and_drops_the_oldest_minutes_first(settings):
    settings.REQUEST_METRICS_BUFFER_MAX_KEYS = 5
    buffer = RequestMetricsBuffer()
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for m in range(8):
        buffer.record(route="matches", at=start + timedelta(minutes=m), duration_ms=1, error=False)
    assert buffer.pending() == 5
    assert buffer.dropped == 3
    kept = sorted(key[0] for key in buffer.take())
    assert kept[0] == start + timedelta(minutes=3) and kept[-1] == start + timedelta(minutes=7)

    # Counts given back after a failed flush obey the same bound.
    for m in range(5):
        buffer.record(route="a", at=start + timedelta(minutes=m), duration_ms=1, error=False)
    taken = buffer.take()
    for m in range(5, 8):
        buffer.record(route="b", at=start + timedelta(minutes=m), duration_ms=1, error=False)
    buffer.give_back(taken)
    assert buffer.pending() == 5
    assert {key[1] for key in buffer.take()} == {"a", "b"}


@pytest.mark.django_db(transaction=True)
def test_two_threads_recording_and_flushing_at_once_lose_nothing():
    minute = now_minute()
    shared = request_metrics_buffer()
    per_thread = 300
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def work(own: RequestMetricsBuffer) -> None:
        try:
            start.wait(timeout=30)
            for n in range(per_thread):
                # The shared buffer is two request threads of one process; each thread's own
                # buffer is another process writing the same rows.
                for buffer in (shared, own):
                    buffer.record(
                        route=f"r{n % 3}", at=minute, duration_ms=n % 40, error=n % 10 == 0, tags=[("f", "treatment")]
                    )
                if n % 25 == 0:
                    shared.flush()
                    own.flush()
            assert own.flush() >= 0
            shared.flush()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    own_buffers = [RequestMetricsBuffer(), RequestMetricsBuffer()]
    threads = [threading.Thread(target=work, args=(own,)) for own in own_buffers]
    for thread in threads:
        thread.start()
    start.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    request_metrics_flush()
    assert all(buffer.pending() == 0 for buffer in (*own_buffers, shared))

    total = request_stats(since=minute, until=minute + timedelta(minutes=1))
    assert total.count == 4 * per_thread
    assert total.errors == 4 * per_thread // 10
    assert sum(total.buckets) == total.count
    tagged = cohort_stats(flag="f", since=minute, until=minute + timedelta(minutes=1))
    assert tagged["treatment"].count == 4 * per_thread
    assert RouteMinute.objects.count() == 6  # 3 routes x (total, treatment)


# -- SLOs and burn rates -------------------------------------------------------------------------
def test_the_slos_name_real_routes_and_histogram_bounds():
    from django.urls import reverse

    assert {s.route for s in slos_all()} >= {"auth-login", "match-run-submit", "matches"}
    for slo in slos_all():
        reverse(slo.route)
    login = slo_get("login.latency")
    assert (login.latency_ms, login.budget) == (1000, pytest.approx(0.005))


@pytest.mark.django_db
def test_burn_rates_over_5_minutes_and_an_hour_from_a_known_fixture():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            # The last minutes: 1000 sign-ins, 10 slower than a second, 20 server errors.
            delta(
                minute - timedelta(minutes=2),
                "auth-login",
                count=1000,
                errors=20,
                buckets={"le_500": 990, "le_2500": 6, "le_inf": 4},
            ),
            # Half an hour ago: 1000 good ones.
            delta(minute - timedelta(minutes=30), "auth-login", count=1000, buckets={"le_250": 1000}),
            # Another route's failures are not this SLO's.
            delta(minute - timedelta(minutes=2), "matches", count=100, errors=100, buckets={"le_inf": 100}),
        ]
    )
    until = timezone.now()
    latency = slo_status(slo_get("login.latency"), until=until)
    # Budget 0.5 %: 1 % bad over 5 min burns 2x, 0.5 % over the hour 1x.
    assert latency.windows["5m"].burn_rate == pytest.approx(2.0)
    assert latency.windows["1h"].burn_rate == pytest.approx(1.0)
    assert latency.burn_rate == pytest.approx(1.0)  # the lower of the two
    assert latency.sample == 1000

    availability = slo_status(slo_get("login.availability"), until=until)
    # Budget 1 %: 2 % errors over 5 min burns 2x, 1 % over the hour 1x.
    assert availability.windows["5m"].burn_rate == pytest.approx(2.0)
    assert availability.windows["1h"].burn_rate == pytest.approx(1.0)

    window = GateWindow(flag="", since=until - timedelta(minutes=10), until=until)
    five = gate_metric_get("slo.login.latency.burn_rate_5m").compute(window)
    hour = gate_metric_get("slo.login.latency.burn_rate_1h").compute(window)
    assert (five.value, five.sample) == (pytest.approx(2.0), 1000)
    assert (hour.value, hour.sample) == (pytest.approx(1.0), 2000)

    outcome = invariant_evaluate(next(i for i in invariants_all() if i.name == "slo.login.latency.burn_rate"))
    assert (outcome.state, outcome.value, outcome.sample) == ("ok", pytest.approx(1.0), 1000)
    matches = invariant_evaluate(next(i for i in invariants_all() if i.name == "slo.matches.availability.burn_rate"))
    assert matches.state == "critical"  # every request failed, in both windows: 200x the budget
    assert matches.value == pytest.approx(200.0)


@pytest.mark.django_db
def test_a_burn_only_in_the_short_window_does_not_page():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute - timedelta(minutes=1), "auth-login", count=100, errors=50),
            delta(minute - timedelta(minutes=40), "auth-login", count=100_000),
        ]
    )
    status = slo_status(slo_get("login.availability"), until=timezone.now())
    assert status.windows["5m"].burn_rate == pytest.approx(50.0)
    assert status.windows["1h"].burn_rate < 14.4
    outcome = invariant_evaluate(next(i for i in invariants_all() if i.name == "slo.login.availability.burn_rate"))
    assert outcome.state == "ok"


@pytest.mark.django_db
def test_low_traffic_reads_not_enough_data_instead_of_a_burn_rate():
    route_minutes_add(deltas=[delta(now_minute(), "match-run-submit", count=3, errors=3)])
    outcome = invariant_evaluate(next(i for i in invariants_all() if i.name == "slo.run_submit.availability.burn_rate"))
    assert outcome.state == "insufficient_data"
    assert "n=3 < 20" in outcome.detail
    empty = gate_metric_get("slo.matches.latency.burn_rate_5m").compute(
        GateWindow(flag="", since=timezone.now(), until=timezone.now())
    )
    assert (empty.value, empty.sample) == (None, 0)


def test_every_slo_has_its_gate_metrics_and_invariant():
    metrics = {m.name for m in gate_metrics_all()}
    invariants = {i.name for i in invariants_all()}
    assert {"http.error_rate", "http.slow_share"} <= metrics
    for slo in slos_all():
        assert {f"slo.{slo.name}.burn_rate_{w}" for w in BURN_WINDOWS} <= metrics
        assert f"slo.{slo.name}.burn_rate" in invariants


# -- the rollout gates -------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_slow_share_gate_compares_the_cohorts_of_the_windows_flag_only(settings):
    settings.REQUEST_METRICS_SLOW_MS = 1000
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute, "matches", count=10, buckets={"le_100": 6, "le_2500": 4}, flag="ranker", cohort="treatment"),
            delta(minute, "auth-me", count=5, buckets={"le_inf": 1, "le_50": 4}, flag="ranker", cohort="treatment"),
            delta(minute, "matches", count=20, buckets={"le_1000": 19, "le_2500": 1}, flag="ranker", cohort="control"),
            delta(minute, "matches", count=50, buckets={"le_inf": 50}, flag="other", cohort="treatment"),
            delta(
                minute - timedelta(hours=3), "matches", count=7, buckets={"le_inf": 7}, flag="ranker", cohort="control"
            ),
        ]
    )
    window = GateWindow(flag="ranker", since=timezone.now() - timedelta(minutes=30), until=timezone.now())
    reading = gate_metric_get("http.slow_share").compute(window)
    assert (reading.treatment.n, reading.treatment.events) == (15, 5)
    assert (reading.control.n, reading.control.events) == (20, 1)
    assert reading.value == pytest.approx(5 / 15)
    assert "treatment" in reading.detail

    nothing = gate_metric_get("http.error_rate").compute(
        GateWindow(flag="never-ran", since=window.since, until=window.until)
    )
    assert (nothing.value, nothing.sample, nothing.treatment.n, nothing.control.n) == (None, 0, 0, 0)


# -- pruning -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_pruning_deletes_only_the_minutes_older_than_the_retention():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(minute - timedelta(days=20), "matches", count=1),
            delta(minute - timedelta(days=20), "matches", count=1, flag="f", cohort="control"),
            delta(minute - timedelta(days=1), "matches", count=1),
        ]
    )
    assert route_minutes_prune(older_than_days=14) == 2
    assert list(RouteMinute.objects.values_list("count", flat=True)) == [1]


@pytest.mark.django_db
def test_the_p95_gate_reads_the_treatment_cohorts_histogram_only():
    minute = now_minute()
    route_minutes_add(
        deltas=[
            delta(
                minute, "matches", count=100, buckets={"le_100": 90, "le_1000": 10}, flag="ranker", cohort="treatment"
            ),
            delta(minute, "matches", count=100, buckets={"le_inf": 100}, flag="ranker", cohort="control"),
        ]
    )
    window = GateWindow(flag="ranker", since=timezone.now() - timedelta(minutes=30), until=timezone.now())
    reading = gate_metric_get("http.p95_ms").compute(window)
    assert reading.sample == 100
    assert 250 < reading.value <= 1000  # the 95th request falls in the 250-1000 ms bucket
    assert not gate_metric_get("http.p95_ms").comparative
    assert gate_metric_get("http.p95_ms").compute(GateWindow("never-ran", window.since, window.until)).value is None


@pytest.mark.django_db
def test_every_invariant_is_a_gate_reading_its_latest_stored_state():
    from ops.models import InvariantResult

    names = {m.name for m in gate_metrics_all()}
    assert {f"invariant.{i.name}" for i in invariants_all()} <= names
    gate = gate_metric_get("invariant.ops.dead_letters_open")
    window = GateWindow(flag="any", since=timezone.now() - timedelta(minutes=5), until=timezone.now() + timedelta(1))
    assert gate.compute(window).value is None  # nothing stored yet: no data, the controller holds
    InvariantResult.objects.create(name="ops.dead_letters_open", app="ops", state="warn", detail="3 open")
    InvariantResult.objects.create(name="ops.dead_letters_open", app="ops", state="critical", detail="40 open")
    reading = gate.compute(window)
    assert (reading.value, reading.sample) == (3.0, 1) and "40 open" in reading.detail
    InvariantResult.objects.create(name="ops.dead_letters_open", app="ops", state="insufficient_data")
    assert gate.compute(window).value is None
