"""The discovery API: each part's routes live in its own module."""

from django.urls import include, path

urlpatterns = [
    path("", include("discovery.urls_member")),
    path("", include("discovery.urls_queue")),
    path("", include("discovery.urls_health")),
]
