"""One throttle for every limited endpoint: per client, at a rate a setting names.

A view names its bucket with ``throttle_scope``; ``RATE_SETTINGS`` says which setting holds
that bucket's rate ("60/min"; empty for no limit). The rate is read at each request, so a
changed setting (or a test's override) applies at once. The client is the member when
signed in, else the address ``NUM_PROXIES`` lets DRF trust: one identity for throttles and
lockouts.

The limit is DRF's sliding log (at most N requests in any window of the rate's length, a
refused request not counted). On the shared Redis cache it is kept by one Lua script, one
round trip per request, where DRF reads the whole log, edits it in Python and writes it back:
two round trips and a pickle each way on every throttled request (a seventh of a suggestion's
CPU), and two requests of one client at the same moment could both pass a full log. Here
Redis drops the entries older than the window, refuses or records the request, and sets the
expiry, atomically. Other caches (the in-process one without ``CACHE_URL``) take DRF's path.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

RATE_SETTINGS = {
    "match_submit": "RUNS_SUBMIT_RATE",  # POST /api/match-runs
    "auth": "AUTH_RATE",  # the sign-in and token endpoints
}

# KEYS[1]: the log (a list, newest first). ARGV: now, window seconds, limit. Answers
# {1 (allowed) or 0, the oldest entry kept (when refused), the entries now}.
_SLIDING_LOG = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
while true do
    local oldest = redis.call('LINDEX', key, -1)
    if not oldest or tonumber(oldest) > now - window then break end
    redis.call('RPOP', key)
end
local count = redis.call('LLEN', key)
if count >= limit then
    -- The oldest entry kept; none with a limit of 0 (then the window starts now).
    return {0, redis.call('LINDEX', key, -1) or ARGV[1], count}
end
redis.call('LPUSH', key, ARGV[1])
redis.call('EXPIRE', key, math.ceil(window))
return {1, '', count + 1}
"""

_script: Any = None  # one for the process: its text's hash; each call names its client


def _redis_script(cache: Any) -> tuple[Any, Any] | None:
    """(the script, this cache's Redis client) for Django's Redis cache; None for any other
    cache."""
    global _script
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(cache, RedisCache):
        return None
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]  # Django's, undeclared in the stubs
    if _script is None:
        _script = client.register_script(_SLIDING_LOG)  # computes the hash; loads nothing yet
    return _script, client


class SettingRateThrottle(ScopedRateThrottle):
    _refused: tuple[float, int] | None = None  # (the oldest entry kept, entries) when refused

    def get_rate(self) -> str | None:
        assert self.scope is not None  # allow_request took it from the view's throttle_scope
        rate: str = getattr(settings, RATE_SETTINGS[self.scope])
        return rate or None

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        found = _redis_script(caches["default"])
        if found is None:
            return super(ScopedRateThrottle, self).allow_request(request, view)  # DRF's get/set
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        script, client = found
        self.now = self.timer()
        # A key of its own: DRF's path keeps a pickled list under self.key, and during a
        # rolling deploy both run (each would find the other's value of the wrong type).
        key = caches["default"].make_and_validate_key(f"log:{self.key}")
        allowed, oldest, count = script(
            keys=[key], args=[repr(self.now), self.duration, self.num_requests], client=client
        )
        if int(allowed):
            return True
        self._refused = (float(oldest), int(count))
        return False

    def wait(self) -> float | None:
        if self._refused is None:
            return super().wait()  # type: ignore[no-any-return]
        oldest, count = self._refused
        available = (self.num_requests or 0) - count + 1
        if available <= 0:
            return None
        return max(0.0, self.duration - (self.now - oldest)) / available  # type: ignore[operator]
