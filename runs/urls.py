from django.urls import path

from runs.api import MatchHealthHourlyApi, MatchRunDebugApi, MatchRunDetailApi, MatchRunMatchesApi, MatchRunSubmitApi

urlpatterns = [
    path("run", MatchRunSubmitApi.as_view(), name="match-run-submit"),
    path("run/<str:run_id>", MatchRunDetailApi.as_view(), name="match-run-detail"),
    path("run/<str:run_id>/matches", MatchRunMatchesApi.as_view(), name="match-run-matches"),
    path("run/<str:run_id>/debug", MatchRunDebugApi.as_view(), name="match-run-debug"),
    path("health/hourly", MatchHealthHourlyApi.as_view(), name="match-health-hourly"),
]
