"""The member's discovery page: pick interests, see suggestions, and the clicks and saves on
them recorded as signals.

A plain Django template; the page talks to the member discovery API (discovery.api) from a
small script (discovery/static/discovery/discover.js). The view only decides who may see the
page and draws the catalog with the member's current interests ticked (two small queries, both
in discovery.selectors)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.csrf import ensure_csrf_cookie

from discovery.selectors import interests_catalog, interests_of_user_by_slug

SIGNIN_URL = reverse_lazy("members:signin")

# How strongly, as the page offers it (the API takes any number 0..1).
AFFINITY_LEVELS = [(0.3, "A little"), (0.6, "Quite"), (1.0, "A lot")]


def _level(affinity: float) -> float:
    """The page's level nearest to a stored affinity (set through the API, it can be any)."""
    return min((abs(value - affinity), value) for value, _ in AFFINITY_LEVELS)[1]


@login_required(login_url=SIGNIN_URL)
@ensure_csrf_cookie
def discover(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    mine = interests_of_user_by_slug(user=user)
    interests = [
        {
            "slug": interest.slug,
            "name": interest.name,
            "checked": interest.slug in mine,
            "level": _level(mine[interest.slug]) if interest.slug in mine else 0.6,
        }
        for interest in interests_catalog(by_name=True)
    ]
    return render(
        request,
        "discovery/discover.html",
        {"nav": "discover", "interests": interests, "levels": AFFINITY_LEVELS},
    )
