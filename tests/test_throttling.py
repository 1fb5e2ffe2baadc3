"""Every throttled view names a bucket whose rate a setting holds (else its first request
would fail), and the rate is read from that setting at each request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from matchplatform.throttling import RATE_SETTINGS, SettingRateThrottle


def _views(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view = getattr(entry.callback, "view_class", None) or getattr(entry.callback, "cls", None)
            if view is not None:
                yield prefix + str(entry.pattern), view


def test_every_throttled_view_has_a_bucket_with_a_rate_setting():
    throttled = {
        path: view
        for path, view in _views()
        if any(issubclass(t, SettingRateThrottle) for t in getattr(view, "throttle_classes", ()))
    }
    assert len(throttled) >= 5  # submitting a run and the sign-in endpoints
    for path, view in throttled.items():
        scope = getattr(view, "throttle_scope", None)
        assert scope in RATE_SETTINGS, f"{path}: throttle_scope {scope!r} has no rate setting"
        assert hasattr(settings, RATE_SETTINGS[scope]), f"{path}: no setting {RATE_SETTINGS[scope]}"


@pytest.mark.django_db
def test_a_changed_rate_setting_applies_at_the_next_request(api_client, settings):
    settings.RUNS_SUBMIT_RATE = "1/min"
    url = "/api/match/run"
    body = {"url": "https://demo-startup-001.example"}
    assert api_client.post(url, body, format="json", REMOTE_ADDR="10.9.9.9").status_code in (200, 202)
    assert api_client.post(url, body, format="json", REMOTE_ADDR="10.9.9.9").status_code == 429
    settings.RUNS_SUBMIT_RATE = ""  # no limit
    assert api_client.post(url, body, format="json", REMOTE_ADDR="10.9.9.9").status_code in (200, 202)


# -- the sliding log on Redis: one atomic script per request ---------------------------------


class _View:
    throttle_scope = "match_submit"


def _Request(ident: str):
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    request = RequestFactory().get("/", REMOTE_ADDR=ident)
    request.user = AnonymousUser()
    return request


def _redis_cache_or_skip():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        pytest.skip("CACHE_URL is not Redis: throttles take DRF's path (the test suite runs with Redis)")
    return cache


def test_the_redis_log_allows_the_rate_refuses_the_rest_and_frees_a_slot_as_the_window_slides(settings, monkeypatch):
    import uuid

    _redis_cache_or_skip()
    settings.RUNS_SUBMIT_RATE = "3/min"
    clock = [1_000_000.0]
    monkeypatch.setattr(SettingRateThrottle, "timer", lambda self: clock[0])
    ident = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"

    def ask() -> SettingRateThrottle:
        throttle = SettingRateThrottle()
        throttle.allowed = throttle.allow_request(_Request(ident), _View())  # type: ignore[attr-defined]
        return throttle

    for second in (0, 10, 20):
        clock[0] = 1_000_000.0 + second
        assert ask().allowed  # type: ignore[attr-defined]
    clock[0] = 1_000_030.0
    refused = ask()
    assert not refused.allowed  # type: ignore[attr-defined]
    assert refused.wait() == pytest.approx(30.0)  # the oldest (t=0) leaves the window at t=60
    clock[0] = 1_000_059.0
    assert not ask().allowed  # type: ignore[attr-defined]  # refusals are not counted...
    clock[0] = 1_000_060.5
    assert ask().allowed  # type: ignore[attr-defined]  # ...so t=0 leaving frees exactly one slot
    assert not ask().allowed  # type: ignore[attr-defined]
    other = SettingRateThrottle()
    assert other.allow_request(_Request(ident + "1"), _View())  # another client has its own log
    # A process still on DRF's path (a rolling deploy) keeps its own key: no value of the
    # wrong type for either.
    from rest_framework.throttling import ScopedRateThrottle

    drf = ScopedRateThrottle()
    drf.THROTTLE_RATES = {"match_submit": "3/min"}
    assert drf.allow_request(_Request(ident), _View())
    assert not ask().allowed  # type: ignore[attr-defined]


def test_concurrent_requests_of_one_client_never_pass_a_full_log(settings):
    """DRF's read-edit-write of the log lets requests that arrive together all pass; the script
    decides each atomically: exactly the rate passes."""
    import threading
    import uuid

    _redis_cache_or_skip()
    settings.RUNS_SUBMIT_RATE = "10/min"
    ident = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.8"
    start = threading.Barrier(40)
    passed: list[bool] = []

    def one() -> None:
        start.wait()
        passed.append(SettingRateThrottle().allow_request(_Request(ident), _View()))

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(passed) == 10 and len(passed) == 40


def test_a_rate_of_zero_refuses_with_429_for_the_whole_window(settings):
    import uuid

    _redis_cache_or_skip()
    settings.RUNS_SUBMIT_RATE = "0/min"
    throttle = SettingRateThrottle()
    assert not throttle.allow_request(_Request(f"10.{uuid.uuid4().int % 250}.3.9"), _View())
    assert throttle.wait() == pytest.approx(60.0)
