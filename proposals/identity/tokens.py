"""API tokens (DRF's authtoken: one per member, sent as ``Authorization: Token <key>``) and the
demo accounts that ``make run`` prints them for."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from rest_framework.authtoken.models import Token


def api_token_issue(*, user: User) -> tuple[Token, bool]:
    """The member's token, created if they have none (and whether it was): signing in again
    hands out the same token, so each program a member runs need not sign in on its own."""
    with transaction.atomic():
        return Token.objects.get_or_create(user=user)


def api_token_revoke(*, user: User) -> bool:
    """Delete the member's token (every program using it is signed out); whether there was one."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0


def staff_account_ensure(*, username: str) -> tuple[User, bool]:
    """A superuser named ``username``, created without a usable password (``manage.py
    changepassword`` sets one), and whether it was created. An existing account is left as it is."""
    model = get_user_model()
    with transaction.atomic():
        user = model.objects.filter(username=username).first()
        if user is not None:
            return user, False
        user = model.objects.create_superuser(username=username, email=None, password=None)
    return user, True
