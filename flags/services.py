"""Reading flags from anywhere: views, services, Celery tasks (no request needed)."""

from __future__ import annotations

from django.http import HttpRequest
from waffle import flag_is_active, switch_is_active

from flags.names import MATCH_ENGINE_V1, SAFE_MODE


def safe_mode_active() -> bool:
    """The global safe-mode switch; readable outside a request (workers, beat, health)."""
    return bool(switch_is_active(SAFE_MODE))


def match_engine_enabled(*, request: HttpRequest) -> bool:
    return bool(flag_is_active(request, MATCH_ENGINE_V1))
