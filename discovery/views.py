"""The member's discovery page: pick interests, see suggestions, and the clicks and saves on
them recorded as signals.

A plain Django template; the page talks to the member discovery API (discovery.api) from a
small script (discovery/static/discovery/discover.js). The view only decides who may see the
page and draws the catalog with the member's current interests ticked (two small queries)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.csrf import ensure_csrf_cookie

from discovery.models import Interest, UserInterest

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
    mine = dict(UserInterest.objects.filter(user=user).values_list("interest_id", "affinity"))
    interests = [
        {
            "slug": interest.slug,
            "name": interest.name,
            "checked": interest.pk in mine,
            "level": _level(mine[interest.pk]) if interest.pk in mine else 0.6,
        }
        for interest in Interest.objects.order_by("name", "slug").only("pk", "slug", "name")
    ]
    return render(
        request,
        "discovery/discover.html",
        {"nav": "discover", "interests": interests, "levels": AFFINITY_LEVELS},
    )
