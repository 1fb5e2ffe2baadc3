"""The project's URLs, unchanged, plus two bench-only views of the same feed:
``bench/matches-offset/`` (paged by OFFSET) and ``bench/matches-deferred/`` (the keyset feed
with the deferred-join prototype)."""

from django.urls import include, path

from bench.feed_support import prototype
from bench.feed_support.offset import OffsetFeedApi

prototype.install()

urlpatterns = [
    path("bench/matches-offset/", OffsetFeedApi.as_view(), name="bench-matches-offset"),
    path("bench/matches-deferred/", prototype.DeferredFeedApi.as_view(), name="bench-matches-deferred"),
    path("", include("matchplatform.urls")),
]
