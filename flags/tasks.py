from __future__ import annotations

from celery import shared_task


@shared_task(name="flags.evaluate")
def flag_evaluate(name: str, *, user_id: int | None = None, unit: str | None = None) -> bool:
    """A flag as a worker sees it, for a member (by id) or a unit: the same answer as a
    request for that member or unit gets."""
    from django.contrib.auth import get_user_model

    from flags.services import flag_enabled

    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    return flag_enabled(name, user=user, unit=unit)
