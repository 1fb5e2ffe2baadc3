"""Which side of each running rollout a request is on.

The running rollouts (id, name, flag, epoch) are a section of the in-process flags snapshot
(``flags.snapshot``; reloaded when the stamp changes, which every rollout write bumps), and
the flag's group and percentage come from the same snapshot: a request costs no query, only
one MurmurHash3 per running rollout. Each (rollout, stage, unit) is also noted once as an
exposure (buffered in process, written in batches off the request path: ``exposures``).
Staff and known bots are in no cohort: they would skew both the figures and the ratio.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from django.http import HttpRequest

from flags.gates import CONTROL, TREATMENT

logger = logging.getLogger(__name__)

SECTION = "rollouts.running"

# Crawlers, link previews and uptime checks that say what they are.
KNOWN_BOTS = re.compile(r"bot|crawl|spider|slurp|facebookexternalhit|pingdom|uptime|preview", re.IGNORECASE)

_register_lock = threading.Lock()
_registered = False


def rollouts_section_register() -> None:
    """Carry the running rollouts in the flags snapshot (once per process)."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if _registered:
            return
        from flags.rollouts.selectors import rollouts_running_load
        from flags.snapshot import snapshot_section_register

        snapshot_section_register(SECTION, rollouts_running_load)
        _registered = True


def request_excluded(request: HttpRequest) -> bool:
    """Staff and known bots are kept out of every cohort."""
    user: Any = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False):
        return True
    agent = request.META.get("HTTP_USER_AGENT", "")
    return bool(agent) and KNOWN_BOTS.search(agent) is not None


def unit_cohort(*, flag: Any, unit: str) -> str | None:
    """ "treatment" or "control" for a unit under a flag view (None: the flag is forced on or
    off for everyone, so there is no random cohort)."""
    from flags.services import rollout_bucket

    if flag.everyone is not None:
        return None
    percent = float(flag.percent or 0)
    if percent >= 100:
        return TREATMENT
    if percent <= 0:
        return CONTROL
    return TREATMENT if rollout_bucket(group=flag.group, unit=unit) <= percent else CONTROL


def request_cohorts(request: HttpRequest) -> tuple[tuple[str, str], ...]:
    """``(flag name, "treatment" | "control")`` for every running rollout, for this request's
    unit; empty for staff and known bots (they are kept out of every cohort). Cheap: read
    from the in-process flags snapshot, no query per request."""
    from flags.rollouts.exposures import exposure_buffer, exposure_flusher_ensure
    from flags.services import UNIT_COOKIE, request_unit
    from flags.snapshot import flag_view, snapshot_section

    rollouts_section_register()
    running = snapshot_section(SECTION)
    if not running or request_excluded(request):
        return ()
    # A unit minted here, after the response, may never reach the visitor (the cookie is set
    # by a middleware that may already have run): it tags this request but is no exposure.
    # Members, a unit cookie, or a unit an evaluation minted during the view are real units.
    user: Any = getattr(request, "user", None)
    cookie = request.COOKIES.get(UNIT_COOKIE) or ""
    known = bool(
        (user is not None and getattr(user, "is_authenticated", False))
        or 0 < len(cookie) <= 64  # request_unit's own test of a usable cookie
        or getattr(request, "rollout_unit", None)
    )
    unit = request_unit(request)
    buffer = exposure_buffer() if known else None
    out: list[tuple[str, str]] = []
    for rollout in running:
        view = flag_view(rollout.flag)
        if view is None:
            continue
        cohort = unit_cohort(flag=view, unit=unit)
        if cohort is None:
            continue
        out.append((rollout.flag, cohort))
        if buffer is None:
            continue
        buffer.note(
            rollout_id=rollout.id,
            epoch=rollout.epoch,
            unit=unit,
            treatment=cohort == TREATMENT,
            percent=float(view.percent or 0),
        )
    if out and buffer is not None:
        exposure_flusher_ensure()
    return tuple(out)
