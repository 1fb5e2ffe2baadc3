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


def unit_cohort(*, flag: Any, unit: str, user: Any = None) -> str | None:
    """ "treatment" or "control" for a unit under a flag view; None when the percentage is not
    what decides: the flag is forced on or off for everyone, or one of its per-member rules
    (a listed member, a group, staff, authenticated) serves this member whatever the bucket.
    Only randomly assigned units belong to a cohort."""
    from flags.services import flag_rule_match, rollout_bucket

    if flag.everyone is not None or flag_rule_match(flag, user):
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
    from flags.services import request_unit, unit_cookie_read
    from flags.snapshot import flag_view, snapshot_section

    running = snapshot_section(SECTION)
    if not running or request_excluded(request):
        return ()
    # Only a member or a unit we signed and the visitor sent back is an exposure: a unit
    # minted for this request tags it, but a client that drops its cookie (or makes units
    # up) would otherwise add a row per request.
    user: Any = getattr(request, "user", None)
    known = bool((user is not None and getattr(user, "is_authenticated", False)) or unit_cookie_read(request))
    unit = request_unit(request)
    buffer = exposure_buffer() if known else None
    out: list[tuple[str, str]] = []
    for rollout in running:
        view = flag_view(rollout.flag)
        if view is None:
            continue
        cohort = unit_cohort(flag=view, unit=unit, user=user)
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
