"""The project's URLs, unchanged, plus the bench-only suggestion views: the stand-in for the
member endpoint (used only while ``/api/discovery/suggestions`` does not resolve) and the
plain alternative."""

from django.urls import include, path

from bench.discovery_support.views import PlainSuggestionsApi, StandInSuggestionsApi

urlpatterns = [
    path("bench/discovery/suggestions", StandInSuggestionsApi.as_view(), name="bench-discovery-suggestions"),
    path("bench/discovery/suggestions-plain", PlainSuggestionsApi.as_view(), name="bench-discovery-plain"),
    path("", include("matchplatform.urls")),
]
