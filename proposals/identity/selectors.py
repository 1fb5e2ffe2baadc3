"""Reads of the identity sub-domain. Nothing here writes, and nothing here imports a services module."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from proposals.models import Profile


def profile_for(*, user: User) -> Profile:
    """The member's profile as stored now; a member who has none yet sees the defaults one
    would be created with (unsaved: a read never writes)."""
    profile = Profile.objects.filter(user=user).first()
    return profile if profile is not None else Profile(user=user, display_name=str(user)[:80])


@dataclass(frozen=True)
class MemberSummary:
    user_id: int
    username: str
    wallet_address: str | None
    display_name: str


def member_summary(*, user: User) -> MemberSummary:
    profile = Profile.objects.filter(user=user).only("display_name", "wallet_address").first()
    return MemberSummary(
        user_id=user.pk,
        username=user.get_username(),
        wallet_address=profile.wallet_address if profile else None,
        display_name=profile.display_name if profile else user.get_username(),
    )
