"""Reads of flags: what a caller's client sees."""

from __future__ import annotations

from django.http import HttpRequest
from waffle import flag_is_active, get_waffle_flag_model


def flags_for_request(request: HttpRequest) -> dict[str, bool]:
    """Every flag, evaluated for this request's member (or anonymous unit) by waffle's own
    rules and our sticky percentage: what the browser UI may switch on."""
    names = get_waffle_flag_model().objects.order_by("name").values_list("name", flat=True)
    return {name: bool(flag_is_active(request, name)) for name in names}
