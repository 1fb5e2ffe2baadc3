"""Discovery's rate limits: per member and action, on the shared cache (Django's cache, Redis).

The project's one throttle (matchplatform.throttling.SettingRateThrottle) names a bucket by the
view's ``throttle_scope`` and reads its rate from a setting at each request; the buckets below
join its table, so a changed setting (or a test's override) applies at once and a 429 comes in
the one error shape with Retry-After. The bucket is per member (the throttle keys a signed-in
caller by their id), so one member's burst never limits another.
"""

from __future__ import annotations

from matchplatform.throttling import RATE_SETTINGS

SUGGEST = "discovery_suggest"  # GET /api/discovery/suggestions
SIGNAL = "discovery_signal"  # POST /api/discovery/signals
INTERESTS = "discovery_interests"  # PUT /api/discovery/me/interests

RATE_SETTINGS.update(
    {
        SUGGEST: "DISCOVERY_RATE_SUGGEST",
        SIGNAL: "DISCOVERY_RATE_SIGNAL",
        INTERESTS: "DISCOVERY_RATE_INTERESTS",
    }
)
