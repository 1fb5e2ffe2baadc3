from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from matchplatform.exceptions import Conflict
from proposals.identity.services import member_create
from proposals.matches.services import event_match_create
from proposals.models import Event, FeedItem, Match, Profile
from proposals.vocab import INTERESTS

DEMO_USER = "demo"


def community_size_needed() -> int:
    """Members the proposals loop needs to hold its marks. Each member is one side of at
    most one open (queued or voting) proposal, so filling the queue and the voting set to
    their high marks takes two members a proposal, plus a few to spare."""
    return 2 * (settings.PROPOSALS_QUEUE_HIGH + settings.PROPOSALS_VOTING_HIGH) + settings.PROPOSALS_VOTERS_PER_PROPOSAL


class Command(BaseCommand):
    help = (
        "Load demo members, two events and a matches feed for the member 'demo' (pending, "
        "accepted, rejected and expired matches, and connections to follow)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--members",
            type=int,
            default=None,
            help="How many members besides demo (default: enough for the proposals loop to hold its marks, "
            f"{community_size_needed()} at PROPOSALS_SCALE={settings.PROPOSALS_SCALE}).",
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed (same seed, same data).")
        parser.add_argument(
            "--password",
            default=None,
            help="Password for every demo member (default: a random one, printed once).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="If the member demo exists, only top the community up to the size the loop needs.",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["members"] if options["members"] is not None else community_size_needed()
        if count < 12:
            raise CommandError("--members must be at least 12 (the demo feed needs them)")
        if User.objects.filter(username=DEMO_USER).exists():
            if options["if_empty"]:
                added = _community_top_up(size=count + 1, progress=not options["no_progress"])
                if added:
                    self.stdout.write(f"added {added} members so the proposals loop can hold its marks")
                self.stdout.write(
                    "demo members already present; sign in as 'demo' (python manage.py changepassword demo "
                    "sets a new password)"
                )
                return
            raise CommandError("the member 'demo' exists already; use a fresh database or --if-empty")
        password = options["password"] or secrets.token_urlsafe(9)
        rng = random.Random(options["seed"])
        privacies = [Profile.Privacy.PUBLIC] * 6 + [Profile.Privacy.CONNECTIONS] * 3 + [Profile.Privacy.PRIVATE]
        with transaction.atomic():
            demo = member_create(
                username=DEMO_USER,
                password=password,
                display_name="Demo Member",
                interests=rng.sample(INTERESTS, 3),
            )
            members = []
            for i in tqdm(range(count), desc="members", unit="member", disable=options["no_progress"]):
                members.append(
                    member_create(
                        username=f"member{i + 1:03d}",
                        display_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                        interests=rng.sample(INTERESTS, 3),
                        privacy=rng.choice(privacies),
                    )
                )
            # One hash for all (hashing is deliberately slow): the same password as demo.
            User.objects.filter(pk__in=[m.pk for m in members]).update(password=demo.password)
            now = timezone.now()
            summit = Event.objects.create(
                name="Founders Summit", starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=2)
            )
            meetup = Event.objects.create(
                name="Investor Meetup", starts_at=now - timedelta(days=1), ends_at=now - timedelta(hours=20)
            )
            self._demo_feed(demo=demo, members=members, events=[summit, meetup], rng=rng)
        self.stdout.write(self.style.SUCCESS(f"seeded {count + 1} members, 2 events and the demo feed"))
        self.stdout.write(f"sign in at /signin as 'demo' (or member001 ...) with the password: {password}")

    def _demo_feed(self, *, demo: User, members: list[User], events: list[Event], rng: random.Random) -> None:
        """demo's matches: a spread of statuses, deadlines and scores; some connections of
        its accepted matches, so mutual connections and follow-all have something to show."""
        plan = ["pending"] * 14 + ["accepted"] * 6 + ["rejected"] * 3 + ["expired"] * 5
        partners = members[: len(plan)]
        for i, (partner, status) in enumerate(zip(partners, plan, strict=False)):
            match = event_match_create(
                event=events[i % 2], member_a=demo, member_b=partner, compatibility=round(rng.uniform(0.2, 0.98), 2)
            )
            _place(match, status=status, rng=rng)
        # The others know each other: accepted matches among them.
        for a in members:
            for b in rng.sample(members, 4):
                if a.pk < b.pk:
                    try:
                        match = event_match_create(
                            event=rng.choice(events), member_a=a, member_b=b, compatibility=rng.uniform(0.3, 0.9)
                        )
                    except Conflict:  # the same pair at the same event twice: skip
                        continue
                    _place(match, status="accepted", rng=rng)


def _community_top_up(*, size: int, progress: bool) -> int:
    """Add members (demo's password, no feed) until ``size`` members are active; a database
    seeded before the community was sized for the loop gets its missing members."""
    active = Profile.objects.filter(is_active=True).count()
    if active >= size:
        return 0
    demo = User.objects.get(username=DEMO_USER)
    rng = random.Random(active)
    privacies = [Profile.Privacy.PUBLIC] * 6 + [Profile.Privacy.CONNECTIONS] * 3 + [Profile.Privacy.PRIVATE]
    taken = set(User.objects.filter(username__startswith="member").values_list("username", flat=True))
    names = (f"member{i:03d}" for i in range(1, 1_000_000) if f"member{i:03d}" not in taken)
    added = []
    with transaction.atomic():
        for _ in tqdm(range(size - active), desc="members", unit="member", disable=not progress):
            added.append(
                member_create(
                    username=next(names),
                    display_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    interests=rng.sample(INTERESTS, 3),
                    privacy=rng.choice(privacies),
                )
            )
        User.objects.filter(pk__in=[m.pk for m in added]).update(password=demo.password)
    return len(added)


def _place(match: Match, *, status: str, rng: random.Random) -> None:
    now = timezone.now()
    created = now - timedelta(hours=rng.uniform(1, 24 * 6))
    fields: dict[str, Any] = {"created_at": created}
    if status == "pending":
        fields["expires_at"] = now + timedelta(hours=rng.uniform(2, 24 * 7))
    elif status == "expired":
        fields["expires_at"] = now - timedelta(hours=rng.uniform(1, 48))
    else:
        fields["expires_at"] = created + timedelta(days=7)
    feed = dict(fields, status=status)
    if status != "pending":
        fields.update(status=status, decided_at=min(now, created + timedelta(hours=rng.uniform(1, 30))))
    if status == "accepted":
        fields.update(decision_a="accept", decision_b="accept", responded_at_a=created, responded_at_b=created)
    if status == "rejected":
        fields.update(decision_b="reject", responded_at_b=created + timedelta(hours=2))
    Match.objects.filter(pk=match.pk).update(**fields)
    FeedItem.objects.filter(match=match).update(**feed)


FIRST = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kemal", "Lea", "Mina", "Noor"]
LAST = ["Okafor", "Park", "Quinn", "Rossi", "Sato", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhou"]
