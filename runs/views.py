from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from flags.services import match_engine_enabled


@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    """The run page: paste a URL, watch the run, read the matches."""
    return render(request, "runs/home.html", {"engine_enabled": match_engine_enabled(request=request)})
