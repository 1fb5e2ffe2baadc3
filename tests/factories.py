from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from proposals.matches.services import event_match_create
from proposals.models import Event, Match, Profile, Proposal, ProposalStatus, pair_hash_of
from proposals.vocab import INTERESTS, interest_mask
from runs.models import Investor, MatchRun, MatchRunStatus, Startup
from runs.vocab import country_mask, sector_mask, stage_mask


class StartupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Startup

    canonical_url = factory.Sequence(lambda n: f"https://startup-{n}.example")
    name = factory.Sequence(lambda n: f"Startup {n}")
    description = "We build AI tools for fintech teams."
    sectors = factory.LazyFunction(lambda: ["ai", "fintech"])
    stage = "seed"
    raise_amount = 2_000_000
    country = "US"
    quality_score = 0.7


class InvestorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Investor

    name = factory.Sequence(lambda n: f"Investor {n}")
    sectors = factory.LazyFunction(lambda: ["ai"])
    stages = factory.LazyFunction(lambda: ["seed"])
    countries = factory.LazyFunction(lambda: ["US"])
    check_min = 250_000
    check_max = 2_000_000
    activity = 0.5
    sector_mask = factory.LazyAttribute(lambda o: sector_mask(o.sectors))
    stage_mask = factory.LazyAttribute(lambda o: stage_mask(o.stages))
    country_mask = factory.LazyAttribute(lambda o: country_mask(o.countries))


class MatchRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MatchRun

    canonical_url = factory.Sequence(lambda n: f"https://run-{n}.example")
    submitted_url = factory.LazyAttribute(lambda o: o.canonical_url)
    status = MatchRunStatus.QUEUED
    max_attempts = 3


# -- proposals ---------------------------------------------------------------------------
class UserFactory(factory.django.DjangoModelFactory):
    """A member account (no profile: use MemberFactory for one with a profile)."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"member{n:04d}")
    password = factory.django.Password("correct horse battery staple")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    user = factory.SubFactory(UserFactory)
    display_name = factory.LazyAttribute(lambda o: o.user.username.title())
    interests = factory.LazyFunction(lambda: list(INTERESTS[:3]))
    interest_mask = factory.LazyAttribute(lambda o: interest_mask(o.interests))
    privacy = Profile.Privacy.PUBLIC


class MemberFactory(UserFactory):
    """A member with a profile, as sign-up makes one."""

    class Meta:
        skip_postgeneration_save = True  # the profile is its own row; the user needs no second save

    profile = factory.RelatedFactory(ProfileFactory, factory_related_name="user")


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    name = factory.Sequence(lambda n: f"Event {n}")
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(days=1))


class ProposalFactory(factory.django.DjangoModelFactory):
    """A queued proposal of two members (the lower id is member_a, as the table requires)."""

    class Meta:
        model = Proposal

    class Params:
        first = factory.SubFactory(MemberFactory)
        second = factory.SubFactory(MemberFactory)

    member_a = factory.LazyAttribute(lambda o: min(o.first, o.second, key=lambda u: u.pk))
    member_b = factory.LazyAttribute(lambda o: max(o.first, o.second, key=lambda u: u.pk))
    pair_hash = factory.LazyAttribute(lambda o: pair_hash_of(o.member_a.pk, o.member_b.pk))
    compatibility = 0.5
    status = ProposalStatus.QUEUED


class MatchFactory(factory.django.DjangoModelFactory):
    """A pending match made at an event, with its two feed rows and its conversation: built
    through the service, so the feed stays in step with the match (an invariant checks it)."""

    class Meta:
        model = Match

    event = factory.SubFactory(EventFactory)
    member_a = factory.SubFactory(MemberFactory)
    member_b = factory.SubFactory(MemberFactory)
    compatibility_score = 0.5

    @classmethod
    def _create(cls, model_class: type[Match], *args: Any, **kwargs: Any) -> Match:
        return event_match_create(
            event=kwargs["event"],
            member_a=kwargs["member_a"],
            member_b=kwargs["member_b"],
            compatibility=kwargs["compatibility_score"],
        )
