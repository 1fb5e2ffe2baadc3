"""Reset the proposals tables between measurements, count queries, and check the invariants."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection

from bench.common.db import execute, one, rows, tables_truncate

Check = tuple[str, bool, str]


def proposals_tables() -> list[str]:
    """Every table of the proposals app but the members' profiles: what a reset empties. Read
    from the models, so a table a later change adds (the feed's ``proposals_feeditem`` was
    once missed here) is emptied too; TRUNCATE without CASCADE fails loudly if another app's
    table points at one of them."""
    from django.apps import apps

    from proposals.models import Profile

    models = apps.get_app_config("proposals").get_models(include_auto_created=True)
    return sorted({m._meta.db_table for m in models if m is not Profile and not m._meta.proxy})


def state_reset(*, vacuum: bool = False) -> None:
    """Empty every proposals table (the members stay) and zero the voter loads."""
    tables_truncate(*proposals_tables(), "bench_status_audit")
    execute("UPDATE proposals_profile SET open_assignments = 0 WHERE open_assignments <> 0")
    if vacuum:
        execute("VACUUM ANALYZE proposals_profile")


def audit_install() -> None:
    """A trigger in the bench's own database that records every status change of a
    proposal (with the statement's clock), so "finalized exactly once" is checked from the
    database rather than inferred."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_status_audit (proposal_id bigint NOT NULL, old text, new text NOT NULL,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        cursor.execute(
            "CREATE FUNCTION bench_status_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO bench_status_audit (proposal_id, old, new) VALUES (NEW.id, OLD.status, NEW.status);"
            " RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER bench_status_audit_tr AFTER UPDATE OF status ON proposals_proposal FOR EACH ROW"
            " WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION bench_status_audit_fn()"
        )


@contextmanager
def scale_applied(*, queue_low: int, queue_high: int, voting_low: int, voting_high: int) -> Iterator[None]:
    names = ("PROPOSALS_QUEUE_LOW", "PROPOSALS_QUEUE_HIGH", "PROPOSALS_VOTING_LOW", "PROPOSALS_VOTING_HIGH")
    saved = {name: getattr(settings, name) for name in names}
    for name, value in zip(names, (queue_low, queue_high, voting_low, voting_high), strict=True):
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


def checks_open_state(*, voters_per_proposal: int, load_counter: bool) -> list[Check]:
    """The invariants of a freshly filled queue and voting set.

    ``load_counter``: the services keep ``Profile.open_assignments``; the naive version does
    not (it counts), so for it the load is counted from the assignments instead."""
    from proposals.invariants import duplicate_pairs, voters_wrong

    out: list[Check] = []
    dup = duplicate_pairs()
    dup_sql = one(
        "SELECT count(*) FROM (SELECT pair_hash FROM proposals_proposal WHERE status IN"
        " ('queued','voting','approved') GROUP BY pair_hash HAVING count(*) > 1) d"
    )
    out.append(("no duplicate open pair", not dup and dup_sql == 0, f"{dup_sql} duplicated pair hashes"))
    busy = one(
        "SELECT count(*) FROM (SELECT m FROM (SELECT member_a_id m FROM proposals_proposal WHERE status IN"
        " ('queued','voting') UNION ALL SELECT member_b_id FROM proposals_proposal WHERE status IN"
        " ('queued','voting')) s GROUP BY m HAVING count(*) > 1) d"
    )
    out.append(("no member in two open proposals", busy == 0, f"{busy} members in more than one"))
    wrong = voters_wrong()
    bad = one(
        "SELECT count(*) FROM proposals_proposal p WHERE p.status = 'voting' AND"
        " ((SELECT count(DISTINCT v.voter_id) FROM proposals_proposalvoter v WHERE v.proposal_id = p.id) <> %s"
        " OR EXISTS (SELECT 1 FROM proposals_proposalvoter v WHERE v.proposal_id = p.id"
        " AND v.voter_id IN (p.member_a_id, p.member_b_id))"
        " OR EXISTS (SELECT 1 FROM proposals_proposalvoter v JOIN proposals_profile f ON f.user_id = v.voter_id"
        " WHERE v.proposal_id = p.id AND NOT f.is_active))",
        [voters_per_proposal],
    )
    out.append(
        (
            f"every voting proposal has {voters_per_proposal} distinct active voters, none in its pair",
            not wrong and bad == 0,
            f"{bad} wrong",
        )
    )
    counted = dict(
        rows(
            "SELECT v.voter_id, count(*) FROM proposals_proposalvoter v JOIN proposals_proposal p"
            " ON p.id = v.proposal_id WHERE p.status = 'voting' AND NOT v.voted GROUP BY v.voter_id"
        )
    )
    max_load = max(counted.values(), default=0)
    active = one("SELECT count(*) FROM proposals_profile WHERE is_active")
    # From all-zero loads, least-loaded-first gives nobody a second assignment while
    # some active member still has none.
    fair = max_load <= 1 or len(counted) >= active - 2
    detail = f"max open assignments per voter {max_load} ({len(counted):,} voters loaded)"
    if load_counter:
        drift = one(
            "SELECT count(*) FROM proposals_profile f LEFT JOIN (SELECT v.voter_id, count(*) n FROM"
            " proposals_proposalvoter v JOIN proposals_proposal p ON p.id = v.proposal_id WHERE p.status = 'voting'"
            " AND NOT v.voted GROUP BY v.voter_id) c ON c.voter_id = f.user_id"
            " WHERE f.open_assignments <> coalesce(c.n, 0)"
        )
        fair = fair and drift == 0
        detail += f"; {drift} profiles whose open_assignments differs from the count"
    out.append(("voters least-loaded first (and the load counter agrees)", fair, detail))
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started
