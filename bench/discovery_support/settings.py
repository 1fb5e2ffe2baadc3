"""The project's settings, plus the bench's URLconf (the stand-in and plain suggestion views)
and the feed bench's timing header (``X-Bench-Timing: app ms;db ms;queries;pid``).

Served by gunicorn with ``DJANGO_SETTINGS_MODULE=bench.discovery_support.settings``; everything
else (database from ``DATABASE_URL``, ``DEBUG`` from the environment, DRF's token
authentication, the flags, the cache) is the project's own configuration."""

from matchplatform.settings import *  # noqa: F403
from matchplatform.settings import MIDDLEWARE

ROOT_URLCONF = "bench.discovery_support.urls"
# First, so the header covers the token lookup, the flags and the metrics middleware too.
MIDDLEWARE = ["bench.feed_support.timing.TimingMiddleware", *MIDDLEWARE]
