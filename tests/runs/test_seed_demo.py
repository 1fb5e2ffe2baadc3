from __future__ import annotations

import pytest
from django.core.management import call_command

from runs.models import Investor, InvestorCorpusVersion, Startup

pytestmark = pytest.mark.django_db


def snapshot():
    return list(Investor.objects.order_by("id").values_list("name", "sectors", "check_min", "sector_mask"))


def test_seeding_is_deterministic_and_bumps_the_corpus_version():
    call_command("seed_demo", "--investors", "300", "--startups", "5", "--no-progress")
    first = snapshot()
    assert len(first) == 300
    assert Startup.objects.filter(canonical_url="https://demo-startup-001.example").exists()
    assert InvestorCorpusVersion.objects.get().version == 1
    Investor.objects.all().delete()
    call_command("seed_demo", "--investors", "300", "--startups", "5", "--no-progress")
    assert snapshot() == first
    assert all(row[3] != 0 for row in first)


def test_if_empty_leaves_existing_data_alone(capsys):
    call_command("seed_demo", "--investors", "10", "--startups", "1", "--no-progress")
    call_command("seed_demo", "--investors", "50", "--if-empty", "--no-progress")
    assert Investor.objects.count() == 10
    assert "already present" in capsys.readouterr().out


def test_negative_counts_are_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("seed_demo", "--investors", "-1")
