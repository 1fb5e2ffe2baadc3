"""The project's settings, plus the bench's URLconf (the offset alternative) and a timing header.

Served by gunicorn with ``DJANGO_SETTINGS_MODULE=bench.feed_support.settings``; everything
else (database from ``DATABASE_URL``, ``DEBUG`` from the environment, sessions, DRF) is the
project's own configuration.
"""

from matchplatform.settings import *  # noqa: F403
from matchplatform.settings import MIDDLEWARE

ROOT_URLCONF = "bench.feed_support.urls"
# First, so the header covers the session and user lookups too.
MIDDLEWARE = ["bench.feed_support.timing.TimingMiddleware", *MIDDLEWARE]
