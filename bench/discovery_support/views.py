"""The bench's two suggestion views (bench-only URLs, never in the project's URLconf).

* ``bench/discovery/suggestions``: a stand-in for ``GET /api/discovery/suggestions`` while that
  endpoint does not exist: it calls ``discovery.services.suggestions_for_user`` and answers the
  same shape (``{"decision_id", "personal", "items": [...]}``). The bench uses the real
  endpoint as soon as the project's URLconf resolves it.
* ``bench/discovery/suggestions-plain``: the plain alternative. The same pipeline as
  ``suggestions_for_user`` (flags, policy, epsilon-greedy decision, the decision logged whole,
  the slate's candidates read back), except the scoring: one query per request that scores
  every active candidate (the member's interests -> categories -> candidates, the best
  affinity times popularity, 0 outside their categories) and orders all of them by score, with
  no index-limited top-N per category. The candidate set is every candidate with a positive
  score (the fallback slate when there is none).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from discovery.models import Candidate
from discovery.names import LEARNING_ENABLED, MARKETPLACE_SUGGEST
from discovery.policies import policy_for_user
from discovery.ranker import decision_seed_new, ranker_decide
from discovery.selectors import Scored, fallback_scored
from discovery.services import Suggestions, decision_log, suggestions_for_user
from flags.evaluation import flag_enabled, safe_mode_active

PLAIN_SQL = """
    SELECT c.id, max(ui.affinity) AS weight, c.popularity
    FROM discovery_candidate c
    LEFT JOIN discovery_interestcategory ic ON ic.category_id = c.category_id
    LEFT JOIN discovery_userinterest ui ON ui.interest_id = ic.interest_id AND ui.user_id = %s
    WHERE c.active
    GROUP BY c.id
    ORDER BY coalesce(max(ui.affinity), 0) * c.popularity DESC, c.id
"""


def candidates_scored_plain(*, user: User, fallback_size: int) -> Scored:
    """Every active candidate scored in one query, all of them ordered by score; the candidate
    set is every candidate of the member's categories (weight not null)."""
    with connection.cursor() as cursor:
        cursor.execute(PLAIN_SQL, [user.pk])
        rows = cursor.fetchall()
    mine = [(int(r[0]), round(float(r[1]) * float(r[2]), 6)) for r in rows if r[1] is not None]
    if not mine:
        return fallback_scored(size=fallback_size)
    return Scored(candidate_ids=[m[0] for m in mine], scores=[m[1] for m in mine], personal=True)


def suggestions_plain(*, user: User, limit: int | None = None) -> Suggestions:
    """``suggestions_for_user`` with the plain scoring (everything else the same)."""
    if not flag_enabled(MARKETPLACE_SUGGEST, user=user):
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    policy = policy_for_user(user=user)
    size = min(limit or policy.slate_size, policy.slate_size)
    safe = safe_mode_active()
    scored = fallback_scored(size=size) if safe else candidates_scored_plain(user=user, fallback_size=size)
    if not scored.candidate_ids:
        return Suggestions(candidates=[], decision_id=None, personal=False, explored=False)
    decision = ranker_decide(
        candidate_ids=scored.candidate_ids,
        scores=scored.scores,
        epsilon=0.0 if safe else policy.epsilon,
        seed=decision_seed_new(),
        slate_size=size,
    )
    decision_id = None
    if flag_enabled(LEARNING_ENABLED, user=user):
        decision_id = decision_log(
            user=user, surface="suggestions", policy=policy, scored=scored, decision=decision, safe=safe
        )
    by_id = Candidate.objects.in_bulk(list(decision.slate))
    return Suggestions(
        candidates=[by_id[i] for i in decision.slate if i in by_id],
        decision_id=decision_id,
        personal=scored.personal,
        explored=decision.explored,
    )


def _answer(served: Suggestions) -> Response:
    items: list[dict[str, Any]] = [
        {"id": c.pk, "name": c.name, "category_id": c.category_id, "kind": c.kind, "popularity": c.popularity}
        for c in served.candidates
    ]
    return Response({"decision_id": served.decision_id, "personal": served.personal, "items": items})


def _limit(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("limit", "12")), 100))
    except ValueError:
        return 12


class StandInSuggestionsApi(APIView):
    """The stand-in for ``GET /api/discovery/suggestions?limit=12`` (bench only)."""

    def get(self, request: Request) -> Response:
        return _answer(suggestions_for_user(user=request.user, limit=_limit(request)))  # type: ignore[arg-type]


class PlainSuggestionsApi(APIView):
    """The plain alternative: every candidate scored by one query per request (bench only)."""

    def get(self, request: Request) -> Response:
        return _answer(suggestions_plain(user=request.user, limit=_limit(request)))  # type: ignore[arg-type]
