"""The member's discovery page, mounted at the site root (see discovery.pages_urls)."""

from django.urls import URLPattern, URLResolver, path

from discovery import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("discover", views.discover, name="discover"),
]
