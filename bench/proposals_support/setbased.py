"""A prototype of the change suggested for ``proposals.voting.services.proposals_finalize_due``
(not used by production; the bench runs it as a fourth finalizer and holds it to the same
checks).

Production closes each due proposal with its own 3-5 statements (conditional UPDATE, SELECT
of the unvoted voters, UPDATE of their loads, INSERT match, INSERT conversation), 500 to a
transaction. The same rule, set-based: per batch one ``UPDATE ... FROM (SELECT ... FOR UPDATE
SKIP LOCKED)`` that closes the batch and returns it, one UPDATE that releases every unvoted
voter's load, one INSERT of the matches and one of their conversations. Same outcome
(yes > no approves), same exactly-once guarantee (SKIP LOCKED plus the status condition),
same timestamps (``statement_timestamp()``, which is what Django's ``Now()`` is on
PostgreSQL)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

BATCH = 200


def finalize_due_setbased(*, limit: int = BATCH) -> int:
    done = 0
    ttl = settings.PROPOSALS_MATCH_TTL_SECONDS
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE proposals_proposal p SET finalized_at = statement_timestamp(),"
                " status = CASE WHEN p.yes_count > p.no_count THEN 'approved' ELSE 'rejected' END"
                " FROM (SELECT id FROM proposals_proposal WHERE status = 'voting' AND deadline <= statement_timestamp()"
                " ORDER BY deadline, id LIMIT %s FOR UPDATE SKIP LOCKED) due"
                " WHERE p.id = due.id AND p.status = 'voting' RETURNING p.id, p.status",
                [limit],
            )
            closed = cursor.fetchall()
            if closed:
                ids = [row[0] for row in closed]
                approved = [row[0] for row in closed if row[1] == "approved"]
                # A voter can hold unvoted seats on several proposals of one batch: release each.
                cursor.execute(
                    "UPDATE proposals_profile f"
                    " SET open_assignments = f.open_assignments - LEAST(f.open_assignments, u.n)"
                    " FROM (SELECT voter_id, count(*) AS n FROM proposals_proposalvoter"
                    " WHERE proposal_id = ANY(%s) AND NOT voted GROUP BY voter_id) u"
                    " WHERE f.user_id = u.voter_id AND f.open_assignments > 0",
                    [ids],
                )
                if approved:
                    cursor.execute(
                        # Django's defaults are not the table's: every NOT NULL column is named.
                        # (No feed items: the prototype measures finalization lag only.)
                        "INSERT INTO proposals_match (public_id, source, proposal_id, member_a_id, member_b_id,"
                        " compatibility_score, status, decision_a, decision_b, expires_at)"
                        " SELECT gen_random_uuid(), 'proposal', id, member_a_id, member_b_id, 0, 'pending', '', '',"
                        " statement_timestamp() + %s * interval '1 second'"
                        " FROM proposals_proposal WHERE id = ANY(%s) RETURNING id",
                        [ttl, approved],
                    )
                    matches = [row[0] for row in cursor.fetchall()]
                    cursor.execute(
                        "INSERT INTO proposals_conversation (public_id, match_id)"
                        " SELECT gen_random_uuid(), m FROM unnest(%s::bigint[]) AS m",
                        [matches],
                    )
                done += len(closed)
        if len(closed) < limit:
            return done
