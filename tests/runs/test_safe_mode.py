"""Safe mode in the runs pipeline: no fetch of an unknown site (the run waits, unfailed, and
is fetched once safe mode is off); a run of a stored startup is served as always."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

from flags.names import SAFE_MODE
from flags.services import switch_set
from ops.models import DeadLetter, QueueHistory
from runs.models import MatchRun, MatchRunStatus
from runs.services import match_run_submit, match_runs_process_batch
from tests.factories import InvestorFactory, MatchRunFactory, StartupFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_safe_mode_defers_unknown_sites_unfailed_and_serves_known_startups(site):
    InvestorFactory.create_batch(3, sectors=["space"])
    StartupFactory(canonical_url="https://known.example")
    switch_set(SAFE_MODE, True, reason="test")

    unknown = MatchRunFactory(canonical_url=site.url, max_attempts=1)
    known = match_run_submit(url="https://known.example").run
    match_runs_process_batch()
    match_runs_process_batch()  # a deferred run is not claimed again before its time

    known.refresh_from_db()
    unknown.refresh_from_db()
    assert known.status == MatchRunStatus.READY
    assert unknown.status == MatchRunStatus.QUEUED and unknown.attempts == 0 and unknown.last_error == ""
    assert site.hits == 0
    assert QueueHistory.objects.filter(item_id=unknown.pk, event="defer").count() == 1
    assert unknown.available_at > known.finished_at

    switch_set(SAFE_MODE, False, reason="test")
    MatchRun.objects.filter(pk=unknown.pk).update(available_at=Now())
    match_runs_process_batch()
    unknown.refresh_from_db()
    assert unknown.status == MatchRunStatus.READY, unknown.last_error  # max_attempts=1 was not used up
    assert site.hits == 1
    assert not DeadLetter.objects.filter(item_id=unknown.pk).exists()
