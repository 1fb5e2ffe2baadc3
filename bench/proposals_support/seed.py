"""Seed members fast: COPY into auth_user and proposals_profile, deterministic interests.

The rows are the ones ``proposals.identity.services.member_create`` would write (interests sorted in
vocabulary order, ``interest_mask`` from ``proposals.vocab.interest_mask``), except the
password, which is Django's unusable marker ``"!"`` (hashing 100k passwords would take
minutes and nothing here logs in). ``member_profile_matches`` checks that claim against a
member made by the real service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.db import connection, transaction

from proposals.vocab import INTERESTS, interest_mask

PRIVACY = ("public", "connections", "private")
PRIVACY_P = (0.7, 0.2, 0.1)
ACTIVE_SHARE = 0.96
JOINED = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Member:
    user_id: int
    username: str
    interests: list[str]
    mask: int
    privacy: str
    is_active: bool


def members_draw(*, count: int, seed: int) -> list[Member]:
    """``count`` members with 1-6 interests each, popular interests more likely (Zipf-like
    weights), drawn without replacement with the Gumbel top-k trick (vectorized)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(INTERESTS) + 1) ** 0.8
    keys = np.log(weights)[None, :] + rng.gumbel(size=(count, len(INTERESTS)))
    order = np.argsort(-keys, axis=1)
    sizes = rng.integers(1, 7, size=count)
    privacy = rng.choice(len(PRIVACY), size=count, p=PRIVACY_P)
    active = rng.random(count) < ACTIVE_SHARE
    members = []
    for i in range(count):
        chosen = sorted(int(j) for j in order[i, : sizes[i]])
        names = [INTERESTS[j] for j in chosen]
        members.append(
            Member(
                user_id=i + 1,
                username=f"member{i + 1:06d}",
                interests=names,
                mask=interest_mask(names),
                privacy=PRIVACY[int(privacy[i])],
                is_active=bool(active[i]),
            )
        )
    return members


def members_seed(*, members: list[Member], progress: Callable[[int], object] | None = None) -> None:
    """COPY the members in (ids as drawn), then move the id sequences past them."""
    step = 25_000
    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        with raw.cursor() as cursor:
            user_cols = (
                "id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined"
            )
            with cursor.copy(f"COPY auth_user ({user_cols}) FROM STDIN") as copy:
                for m in members:
                    copy.write_row((m.user_id, "!", False, m.username, "", "", "", False, True, JOINED))
            profile_cols = (
                "id, user_id, display_name, bio, interests, interest_mask, privacy, is_active, open_assignments"
            )
            with cursor.copy(f"COPY proposals_profile ({profile_cols}) FROM STDIN") as copy:
                for n, m in enumerate(members, 1):
                    interests = json.dumps(m.interests)
                    copy.write_row((m.user_id, m.user_id, m.username, "", interests, m.mask, m.privacy, m.is_active, 0))
                    if progress and n % step == 0:
                        progress(n)
            for table in ("auth_user", "proposals_profile"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE auth_user")
        cursor.execute("VACUUM ANALYZE proposals_profile")


def member_profile_matches(*, member: Member) -> tuple[bool, str]:
    """Make one member with the real ``member_create`` (shuffled interests) and compare its
    profile with what the seeding writes for the same interests; then delete it again."""
    from django.contrib.auth import get_user_model

    from proposals.identity.services import member_create
    from proposals.models import Profile

    user = member_create(username="bench-probe", interests=list(reversed(member.interests)), privacy=member.privacy)
    try:
        profile = Profile.objects.get(user=user)
        got = (profile.interests, profile.interest_mask, profile.privacy, profile.open_assignments, profile.is_active)
        want = (member.interests, member.mask, member.privacy, 0, True)
        return got == want, f"member_create wrote {got}, seeding writes {want}"
    finally:
        get_user_model().objects.filter(pk=user.pk).delete()
