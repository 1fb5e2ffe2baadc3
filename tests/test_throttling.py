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
