"""Reads of the identity sub-domain. Nothing here writes, and nothing here imports a services module."""

from __future__ import annotations

from django.contrib.auth.models import User

from proposals.models import Profile


def profile_for(*, user: User) -> Profile:
    """The member's profile as stored now; a member who has none yet sees the defaults one
    would be created with (unsaved: a read never writes)."""
    profile = Profile.objects.filter(user=user).first()
    return profile if profile is not None else Profile(user=user, display_name=str(user)[:80])
