"""Operators' discovery pages (HTML), mounted at the site root."""

from django.urls import URLPattern, URLResolver, path

from discovery.views_ops import ops_discovery

urlpatterns: list[URLPattern | URLResolver] = [
    path("ops/discovery", ops_discovery, name="ops-discovery"),
]
