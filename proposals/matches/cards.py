"""What a viewer may see of a member, and a feed item as the API shows it. Privacy
decides: public members to everyone, connections-only members to their connections,
private members to nobody."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from proposals.matches.sql import FeedRow
from proposals.matches.terms import PENDING, status_shown
from proposals.models import Profile


# -- privacy ------------------------------------------------------------------------------
def member_privacy(member: User) -> str:
    profile = getattr(member, "profile", None)
    return profile.privacy if profile is not None else Profile.Privacy.PRIVATE


def _visible(privacy: str | None, *, connected: bool) -> bool:
    return privacy == Profile.Privacy.PUBLIC or (privacy == Profile.Privacy.CONNECTIONS and connected)


def profile_visible(member: User, *, connected: bool) -> bool:
    """Whether a viewer may see this member's profile and connections: public members to
    everyone, connections-only members to their connections, private members to nobody."""
    return _visible(member_privacy(member), connected=connected)


def _card(
    *,
    member_id: int,
    username: str | None,
    display_name: str | None,
    privacy: str | None,
    bio: str | None,
    interests: list[str] | str | None,
    connected: bool,
) -> dict[str, Any]:
    """What a viewer may see of a member (``display_name`` None: the member has no profile)."""
    privacy = privacy if display_name is not None and privacy is not None else Profile.Privacy.PRIVATE
    data: dict[str, Any] = {
        "member_id": member_id,
        "display_name": display_name if display_name is not None else username,
        "privacy": privacy,
    }
    if display_name is not None and _visible(privacy, connected=connected):
        data.update(bio=bio, interests=json.loads(interests) if isinstance(interests, str) else interests)
    return data


def member_card(member: User, *, connected: bool) -> dict[str, Any]:
    profile = getattr(member, "profile", None)
    return _card(
        member_id=member.pk,
        username=member.get_username(),
        display_name=profile.display_name if profile is not None else None,
        privacy=profile.privacy if profile is not None else None,
        bio=profile.bio if profile is not None else None,
        interests=profile.interests if profile is not None else None,
        connected=connected,
    )


def item_data(item: FeedRow, *, now: datetime) -> dict[str, Any]:
    status = status_shown(item.status, item.expires_at, now)
    left = None
    if status == PENDING:
        left = max(int((item.expires_at - now).total_seconds()), 0)
    visible = _visible(item.privacy if item.display_name is not None else None, connected=item.connected)
    return {
        "match_id": str(item.match_public_id),
        "status": status,
        "compatibility": item.compatibility,
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "seconds_left": left,
        "source": item.source,
        "event": {"id": item.event_id, "name": item.event_name} if item.event_id is not None else None,
        "with": _card(
            member_id=item.other_id,
            username=item.username,
            display_name=item.display_name,
            privacy=item.privacy,
            bio=item.bio,
            interests=item.interests,
            connected=item.connected,
        ),
        "my_decision": item.my_decision or None,
        "their_decision": item.their_decision or None,
        "responded_at": item.responded_at,
        "mutual_connections": item.mutual if visible else 0,
        "conversation_id": str(item.conversation_id) if item.conversation_id else None,
    }
