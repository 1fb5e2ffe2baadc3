"""The member pages: sign in and out, vote, matches, a conversation.

Plain Django templates; the pages talk to the JSON API (``proposals.api``) from small
scripts under ``static/proposals``. The views only decide who may see a page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from matchplatform.authentication import lockout_message, lockout_seconds
from matchplatform.exceptions import NotFound
from proposals.matches.selectors import conversation_for
from proposals.models import Event, FeedItem

SIGNIN_URL = reverse_lazy("members:signin")


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput)


def _next_path(value: str | None) -> str | None:
    """``next`` only when it is a path on this site: an absolute or scheme-relative URL
    (``https://evil.example``, ``//evil.example``, ``/\\evil.example``) is an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if not url_has_allowed_host_and_scheme(value, allowed_hosts=None):
        return None
    return value


def _default_next() -> str:
    return reverse("members:vote")


@sensitive_post_parameters("password")
@csrf_protect
@ensure_csrf_cookie
@never_cache
@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    """Password sign-in (a plain form POST) plus the Sign-In with Ethereum button. django-axes
    counts the failures (per account and client, and per client) in ``authenticate`` and refuses
    a locked-out client there, even with the right password."""
    next_path = _next_path(request.POST.get("next") if request.method == "POST" else request.GET.get("next"))
    form = SignInForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            error = "Enter your username and your password."
            status = 400
        else:
            user = authenticate(request, username=form.cleaned_data["username"], password=form.cleaned_data["password"])
            if user is not None:
                login(request, user)
                return HttpResponseRedirect(next_path or _default_next())
            if getattr(request, "axes_locked_out", False):
                error = lockout_message()
                status = 429
            else:
                error = "That username and password do not match. Check them and try again."
                status = 400
    response = render(
        request,
        "proposals/signin.html",
        {
            "nav": "signin",
            "form": form,
            "error": error,
            "next": next_path or "",
            "continue_to": next_path or _default_next(),
        },
        status=status,
    )
    if status == 429:
        response["Retry-After"] = str(lockout_seconds())
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def signout(request: HttpRequest) -> HttpResponse:
    """POST ends the session; GET only asks (a link or a prefetch must not sign anyone out)."""
    if request.method == "POST":
        logout(request)
        messages.info(request, "You are signed out.")
        return HttpResponseRedirect(SIGNIN_URL)
    return render(request, "proposals/signout.html")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


@login_required(login_url=SIGNIN_URL)
@ensure_csrf_cookie
def vote(request: HttpRequest) -> HttpResponse:
    return render(request, "proposals/vote.html", {"nav": "vote"})


# The event filter lists at most this many of the member's events, latest first.
MATCHES_EVENTS_LISTED = 200


@login_required(login_url=SIGNIN_URL)
@ensure_csrf_cookie
def matches(request: HttpRequest) -> HttpResponse:
    """The matches feed. The page reads the feed API itself; the view only lists the events
    the member has matches at, for the event filter (one query on the feed's event index)."""
    user = _user(request)
    at = FeedItem.objects.filter(member=user, event__isnull=False).values("event_id")
    events = Event.objects.filter(pk__in=at).order_by("-starts_at", "id").only("id", "name", "starts_at")
    return render(
        request,
        "proposals/matches.html",
        {"nav": "matches", "events": list(events[:MATCHES_EVENTS_LISTED])},
    )


@login_required(login_url=SIGNIN_URL)
@ensure_csrf_cookie
def conversation(request: HttpRequest, conversation_id: str) -> HttpResponse:
    user = _user(request)
    try:
        thread = conversation_for(user=user, conversation_id=conversation_id)
    except NotFound:
        # To anyone but its two members the conversation does not exist.
        raise Http404("No such conversation.") from None
    match = thread.match
    other = match.member_b if match.member_a_id == user.pk else match.member_a
    profile = getattr(other, "profile", None)
    return render(
        request,
        "proposals/conversation.html",
        {
            "nav": "matches",
            "conversation_id": str(thread.public_id),
            "other_name": profile.display_name if profile else other.get_username(),
            "match_status": match.get_status_display(),
            "closed": thread.closed_at is not None,
        },
    )
