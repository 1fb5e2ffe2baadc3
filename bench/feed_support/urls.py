"""The project's URLs, unchanged, plus the bench-only plain alternative of the feed:
``bench/matches-offset/`` (paged by OFFSET)."""

from django.urls import include, path

from bench.feed_support.offset import OffsetFeedApi

urlpatterns = [
    path("bench/matches-offset/", OffsetFeedApi.as_view(), name="bench-matches-offset"),
    path("", include("matchplatform.urls")),
]
