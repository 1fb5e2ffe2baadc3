"""Matches made before the feed existed get their score and their two feed rows when
migration 0003 runs (set-based, on the real database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("proposals", "0002_generation_queue_proxy")]
AFTER = [("proposals", "0004_feed_status_compat_index")]


@pytest.mark.django_db(transaction=True)
def test_migration_0003_backfills_scores_and_feed_rows_for_existing_matches():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model("auth", "User")
    Proposal = old.get_model("proposals", "Proposal")
    Match = old.get_model("proposals", "Match")
    users = [User.objects.create(username=f"u{i}") for i in range(4)]
    made = []
    for i, (a, b, score, status) in enumerate(
        [(0, 1, 0.25, "pending"), (2, 3, 0.75, "accepted"), (0, 3, 0.5, "expired")]
    ):
        proposal = Proposal.objects.create(
            member_a=users[a], member_b=users[b], pair_hash=f"h{i}", compatibility=score, status="approved"
        )
        made.append(
            Match.objects.create(
                proposal=proposal,
                member_a=users[a],
                member_b=users[b],
                status=status,
                expires_at=timezone.now() + timedelta(days=i + 1),
            ).pk
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Match = new.get_model("proposals", "Match")
    FeedItem = new.get_model("proposals", "FeedItem")
    for pk, score in zip(made, (0.25, 0.75, 0.5), strict=True):
        match = Match.objects.get(pk=pk)
        assert match.compatibility_score == score and match.source == "proposal"
        rows = FeedItem.objects.filter(match_id=pk).order_by("member_id")
        assert sorted((r.member_id, r.other_id) for r in rows) == sorted(
            [(match.member_a_id, match.member_b_id), (match.member_b_id, match.member_a_id)]
        )
        for row in rows:
            assert (row.status, row.compatibility, row.created_at, row.expires_at, row.source) == (
                match.status,
                score,
                match.created_at,
                match.expires_at,
                "proposal",
            )
    assert FeedItem.objects.count() == 6
    # Leave the database at the newest migrations for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
