"""One throttle for every limited endpoint: per client, at a rate a setting names.

A view names its bucket with ``throttle_scope``; ``RATE_SETTINGS`` says which setting holds
that bucket's rate ("60/min"; empty for no limit). The rate is read at each request, so a
changed setting (or a test's override) applies at once. The client is the member when
signed in, else the address ``NUM_PROXIES`` lets DRF trust: one identity for throttles and
lockouts.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle

RATE_SETTINGS = {
    "match_submit": "RUNS_SUBMIT_RATE",  # POST /api/match-runs
    "auth": "AUTH_RATE",  # the sign-in and token endpoints
}


class SettingRateThrottle(ScopedRateThrottle):
    def get_rate(self) -> str | None:
        assert self.scope is not None  # allow_request took it from the view's throttle_scope
        rate: str = getattr(settings, RATE_SETTINGS[self.scope])
        return rate or None
