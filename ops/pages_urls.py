"""Operator pages (HTML), mounted at the site root."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
