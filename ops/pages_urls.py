"""Operator pages (HTML), mounted at the site root."""

from __future__ import annotations

from django.urls import URLPattern, path

from ops.slo.views import ops_requests

urlpatterns: list[URLPattern] = [
    path("ops/requests", ops_requests, name="ops-requests"),
]
