from __future__ import annotations

import pytest
from django.core.management import call_command

from runs.demo import investors_seed
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


FIELDS = (
    "name",
    "sectors",
    "stages",
    "countries",
    "check_min",
    "check_max",
    "activity",
    "sector_mask",
    "stage_mask",
    "country_mask",
)


def stored() -> list[tuple]:
    return list(Investor.objects.order_by("id").values_list(*FIELDS))


def test_investors_read_back_with_the_fields_and_shapes_they_always_had():
    from runs.demo import _CHECKS, _FIRST, _SECOND
    from runs.vocab import COUNTRIES, SECTORS, STAGES, country_mask, sector_mask, stage_mask

    investors_seed(count=3000, seed=5)
    rows = stored()
    assert len(rows) == 3000
    prefixes = {f"{first} {second}" for first in _FIRST for second in _SECOND}
    sector_counts, country_counts = set(), []
    for number, (name, sectors, stages, countries, low, high, activity, s_mask, t_mask, c_mask) in enumerate(
        rows, start=1
    ):
        prefix, tail = name.rsplit(" ", 1)
        assert prefix in prefixes and tail == str(number)
        # Sectors: 1-4 distinct, in vocabulary order. Stages: 1-3 consecutive.
        assert all(isinstance(v, str) for v in sectors + stages + countries)
        assert 1 <= len(sectors) <= 4 and sectors == sorted(set(sectors), key=SECTORS.index)
        at = STAGES.index(stages[0])
        assert at <= len(STAGES) - 2 and 1 <= len(stages) <= 3 and stages == list(STAGES[at : at + len(stages)])
        # Countries: none (invests anywhere) or 1-3 distinct, alphabetical.
        assert len(countries) <= 3 and countries == sorted(set(countries))
        assert set(countries) <= set(COUNTRIES)
        assert type(low) is int and type(high) is int
        assert low in _CHECKS and high in _CHECKS and 1 <= _CHECKS.index(high) - _CHECKS.index(low) <= 3
        assert type(activity) is float and 0 <= activity <= 1 and round(activity, 3) == activity
        assert (s_mask, t_mask, c_mask) == (sector_mask(sectors), stage_mask(stages), country_mask(countries))
        sector_counts.add(len(sectors))
        country_counts.append(len(countries))
    assert sector_counts == {1, 2, 3, 4}
    assert set(country_counts) == {0, 1, 2, 3}
    assert 0.25 < country_counts.count(0) / len(rows) < 0.35  # 30 % invest anywhere


def test_the_copy_path_and_the_orm_path_store_the_same_investors():
    investors_seed(count=500, seed=9, copy=True)
    through_copy = stored()
    Investor.objects.all().delete()
    investors_seed(count=500, seed=9, copy=False)
    assert stored() == through_copy


def test_the_first_investors_of_a_seed_do_not_depend_on_the_count(monkeypatch):
    from runs import demo

    monkeypatch.setattr(demo, "_BLOCK", 100)
    investors_seed(count=150, seed=3)
    few = stored()
    Investor.objects.all().delete()
    investors_seed(count=420, seed=3)
    many = stored()
    assert many[:150] == few
    assert [row[0].rsplit(" ", 1)[1] for row in many[-3:]] == ["418", "419", "420"]
    assert len({row[0] for row in many}) == 420
    Investor.objects.all().delete()
    investors_seed(count=150, seed=4)
    assert stored() != few  # another seed, other investors


@pytest.mark.parametrize("copy", [True, False])
def test_progress_hears_of_every_block_and_adds_up_to_the_count(monkeypatch, copy):
    from runs import demo

    monkeypatch.setattr(demo, "_BLOCK", 100)
    heard: list[int] = []
    assert investors_seed(count=250, seed=1, progress=heard.append, copy=copy) == 250
    assert heard == [100, 100, 50]
    assert Investor.objects.count() == 250
    assert InvestorCorpusVersion.objects.get().version == 1  # moved once, at the end


def test_seeding_nothing_stores_nothing_and_reports_nothing():
    heard: list[int] = []
    assert investors_seed(count=0, progress=heard.append) == 0
    assert heard == []
    assert not Investor.objects.exists()
