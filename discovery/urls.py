"""The discovery API: each part's routes live in its own module (the member routes,
discovery.urls_member, are listed first of all in matchplatform.urls)."""

from django.urls import include, path

urlpatterns = [
    path("", include("discovery.urls_queue")),
    path("", include("discovery.urls_health")),
]
