"""Which side of each running rollout a request is on (interface; the rollouts work fills it)."""

from __future__ import annotations

from django.http import HttpRequest


def request_cohorts(request: HttpRequest) -> tuple[tuple[str, str], ...]:
    """``(flag name, "treatment" | "control")`` for every running rollout, for this request's
    unit; empty for staff and known bots (they are kept out of every cohort). Cheap: read
    from the in-process flags snapshot, no query per request."""
    return ()
