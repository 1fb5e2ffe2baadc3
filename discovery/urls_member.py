"""The member-facing discovery API, mounted under /api/ (see discovery.urls)."""

from django.urls import URLPattern, URLResolver, path

from discovery.api import (
    InterestCatalogApi,
    MyDecisionDetailApi,
    MyDecisionsApi,
    MyInterestsApi,
    MySignalsApi,
    SignalsApi,
    SuggestionsApi,
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("discovery/interests", InterestCatalogApi.as_view(), name="discovery-interests"),
    path("discovery/me/interests", MyInterestsApi.as_view(), name="discovery-my-interests"),
    path("discovery/suggestions", SuggestionsApi.as_view(), name="discovery-suggestions"),
    path("discovery/signals", SignalsApi.as_view(), name="discovery-signals"),
    path("discovery/me/signals", MySignalsApi.as_view(), name="discovery-my-signals"),
    path("discovery/me/decisions", MyDecisionsApi.as_view(), name="discovery-my-decisions"),
    path("discovery/me/decisions/<str:decision_id>", MyDecisionDetailApi.as_view(), name="discovery-my-decision"),
]
