"""Writes of the identity sub-domain: members, their profiles, wallet nonces. (Sign-in
with a wallet is in ``siwe``, API tokens in ``tokens``.) Every function owns its transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now

from matchplatform.exceptions import Conflict, ErrorCode, InvalidInput
from proposals.models import Profile, WalletNonce
from proposals.vocab import INTERESTS, interest_mask


def profile_update(
    *,
    user: User,
    display_name: str | None = None,
    bio: str | None = None,
    interests: Iterable[str] | None = None,
    privacy: str | None = None,
) -> Profile:
    """Change the fields given (None leaves a field as it is) and nothing else: the update
    names only those columns, so a concurrent change to any other field of the profile (the
    voting loop's ``open_assignments``, a wallet sign-in's ``wallet_address``) is never
    written back stale. Creates the profile if the member has none."""
    changes: dict[str, Any] = {}
    if display_name is not None:
        if not display_name.strip():
            raise InvalidInput(
                "Display name must not be empty.", code=ErrorCode.REQUIRED, fields={"display_name": ["Required."]}
            )
        changes["display_name"] = display_name.strip()[:80]
    if bio is not None:
        changes["bio"] = bio[:2000]
    if interests is not None:
        values = sorted(set(interests), key=lambda v: INTERESTS.index(v) if v in INTERESTS else len(INTERESTS))
        unknown = [v for v in values if v not in INTERESTS]
        if unknown:
            message = f"Unknown interests: {', '.join(unknown[:5])}."
            raise InvalidInput(message, code=ErrorCode.INVALID_CHOICE, fields={"interests": [message]})
        changes["interests"] = values
        changes["interest_mask"] = interest_mask(values)
    if privacy is not None:
        if privacy not in Profile.Privacy.values:
            raise InvalidInput(
                "Unknown privacy setting.", code=ErrorCode.INVALID_CHOICE, fields={"privacy": ["Invalid."]}
            )
        changes["privacy"] = privacy
    with transaction.atomic():
        profile, created = Profile.objects.get_or_create(
            user=user, defaults={"display_name": str(user)[:80], **changes}
        )
        if not created and changes:
            Profile.objects.filter(pk=profile.pk).update(**changes)
            for field, value in changes.items():
                setattr(profile, field, value)
    return profile


def wallet_nonces_prune() -> int:
    """Drop nonces that can no longer be used: spent, or expired for over a day."""
    deleted, _ = WalletNonce.objects.filter(
        Q(used_at__isnull=False) | Q(expires_at__lt=Now() - timedelta(days=1))
    ).delete()
    return deleted


def member_create(*, username: str, password: str | None = None, **profile: Any) -> User:
    """A user with a profile (seeding, tests, sign-up)."""
    User = get_user_model()  # noqa: N806
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            profile_update(user=user, display_name=profile.pop("display_name", username), **profile)
    except IntegrityError:
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN) from None
    return user
