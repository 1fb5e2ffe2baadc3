from __future__ import annotations

import factory

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
