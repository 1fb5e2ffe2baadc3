"""Off-policy evaluation on logged decisions (discovery.ope_eval, the command and the API):
on simulated logs whose true policy values are known, the estimates of another epsilon cover
the truth; evaluating the logging policy itself returns its observed mean; only randomized
decisions with a closed attribution window are used, and one version's logs only; another
scoring recomputes the candidate's top item; a missing version is refused."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from discovery.models import Candidate, Category, Interest, InterestCategory, LearningEvent, UserInterest
from discovery.ope_eval import (
    SCORING_POPULARITY,
    Catalog,
    TargetPolicy,
    ope_evaluate,
    ope_lift,
    ope_log_load,
    target_arrays,
)
from discovery.ranker import ranker_decide, ranker_propensities
from matchplatform.exceptions import InvalidInput, NotFound

pytestmark = pytest.mark.django_db

VERSION = "epsilon_greedy_v1"
K = 5
CLICK_TOP = 0.4  # the click probability of the top-scored item when it leads
CLICK_OTHER = 0.05  # ... of any other
N = 1500  # decisions logged by the `logs` fixture


def true_value(epsilon: float, *, k: int = K, top: float = CLICK_TOP, other: float = CLICK_OTHER) -> float:
    p_top, _ = ranker_propensities(epsilon=epsilon, k=k)
    return p_top * top + (1 - p_top) * other


def make_catalog(k: int = K) -> list[Candidate]:
    category, _ = Category.objects.get_or_create(slug="sim", defaults={"name": "Simulated"})
    return [
        Candidate.objects.create(name=f"sim {i}", category=category, popularity=round(0.9 - 0.1 * i, 2))
        for i in range(k)
    ]


def simulate_logs(
    *,
    user,
    candidates: list[Candidate],
    n: int,
    epsilon: float,
    seed: int = 7,
    version: str = VERSION,
    decided_at: datetime | None = None,
    click_top: float = CLICK_TOP,
    click_other: float = CLICK_OTHER,
    scores: list[float] | None = None,
    personal: bool = True,
) -> list[LearningEvent]:
    """``n`` epsilon-greedy decisions over the candidates (the first scores highest), each
    rewarded 1 with probability ``click_top`` when the top item led, ``click_other`` else,
    logged as ``suggestions_for_user`` logs them, with closed attribution windows."""
    rng = random.Random(seed)
    ids = [c.pk for c in candidates]
    scores = scores or [float(len(ids) - i) for i in range(len(ids))]
    when = decided_at or timezone.now() - timedelta(days=1)
    rows = []
    for i in range(n):
        decision = ranker_decide(
            candidate_ids=ids, scores=scores, epsilon=epsilon, seed=rng.randrange(2**63), slate_size=3
        )
        click = rng.random() < (click_top if decision.chosen == decision.top else click_other)
        rows.append(
            LearningEvent(
                user=user,
                policy_version=version,
                policy_hash="sim",
                candidate_ids=ids,
                distribution={str(c): p for c, p in decision.distribution.items()},
                slate=list(decision.slate),
                chosen_id=decision.chosen,
                p_exp=decision.p_exp if decision.randomized else 0.0,
                explored=decision.explored,
                randomized=decision.randomized,
                seed=decision.seed,
                score=decision.chosen_score,
                context={"personal": personal, "safe_mode": False, "epsilon": epsilon},
                decided_at=when + timedelta(seconds=i),
                reward=1.0 if click else None,
                rewarded_at=when + timedelta(seconds=i + 5) if click else None,
            )
        )
    return LearningEvent.objects.bulk_create(rows, batch_size=1000)


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="ope-member")


@pytest.fixture
def logs(member):
    candidates = make_catalog()
    simulate_logs(user=member, candidates=candidates, n=N, epsilon=0.3)
    return candidates


def test_another_epsilon_is_estimated_within_its_intervals_and_the_dr_interval_is_narrower(logs):
    candidate = TargetPolicy(epsilon=0.1)
    result = ope_evaluate(version=VERSION, candidate=candidate)
    assert result.decisions == result.randomized == result.read == result.usable == N
    truth = true_value(0.1)
    for name in ("ips", "snips", "dr"):
        estimate = result.estimates[name]
        assert estimate.lower <= truth <= estimate.upper, (name, estimate, truth)
        assert estimate.n == N
    # The logged policy earns less than the greedier candidate, and the estimates see it.
    assert result.observed_mean is not None and abs(result.observed_mean - true_value(0.3)) < 0.03
    assert result.estimates["dr"].value > result.observed_mean
    assert result.estimates["dr"].std_error < result.estimates["ips"].std_error
    assert 0 < result.effective_sample_size <= N


def test_evaluating_the_logging_policy_itself_returns_the_observed_mean(logs):
    result = ope_evaluate(version=VERSION, candidate=TargetPolicy(epsilon=0.3))
    assert result.mean_importance_weight == pytest.approx(1.0, abs=1e-12)
    assert result.estimates["ips"].value == pytest.approx(result.observed_mean, abs=1e-12)
    assert result.estimates["snips"].value == pytest.approx(result.observed_mean, abs=1e-12)
    assert result.effective_sample_size == pytest.approx(N)


def test_only_randomized_closed_window_decisions_of_the_one_version_are_used(member, logs):
    simulate_logs(user=member, candidates=logs, n=40, epsilon=0.0, seed=1)  # safe mode: p_exp 0
    simulate_logs(
        user=member, candidates=logs, n=30, epsilon=0.3, seed=2, decided_at=timezone.now() - timedelta(seconds=100)
    )
    simulate_logs(user=member, candidates=logs, n=500, epsilon=0.9, seed=3, version="epsilon_greedy_v2")
    result = ope_evaluate(version=VERSION, candidate=TargetPolicy(epsilon=0.1))
    assert (result.decisions, result.randomized, result.open_window) == (N + 70, N + 30, 30)
    assert result.read == result.usable == N
    assert any("attribution window" in note for note in result.notes)
    other = ope_evaluate(version="epsilon_greedy_v2", candidate=TargetPolicy(epsilon=0.9))
    assert other.usable == 500 and other.observed_mean == pytest.approx(other.estimates["ips"].value)


def test_the_cap_reads_the_newest_decisions(logs):
    result = ope_evaluate(version=VERSION, candidate=TargetPolicy(epsilon=0.1), max_decisions=100)
    assert result.read == 100 and any("newest 100" in note for note in result.notes)
    newest = set(LearningEvent.objects.order_by("-decided_at").values_list("id", flat=True)[:100])
    assert set(ope_log_load(version=VERSION, max_decisions=100).ids) == newest


def test_a_missing_version_is_not_found_and_a_bad_candidate_is_invalid(logs):
    with pytest.raises(NotFound):
        ope_evaluate(version="no_such_version", candidate=TargetPolicy(epsilon=0.1))
    with pytest.raises(InvalidInput):
        TargetPolicy(epsilon=1.5)
    with pytest.raises(InvalidInput):
        TargetPolicy(epsilon=0.1, scoring="freshness")


def test_another_scoring_recomputes_the_top_item_from_the_catalog_and_interests(member):
    interest = Interest.objects.create(slug="sim-interest", name="Sim")
    candidates = make_catalog()
    InterestCategory.objects.create(interest=interest, category=candidates[0].category)
    UserInterest.objects.create(user=member, interest=interest, affinity=1.0)
    # Logged scores put the LAST candidate first (as affinity x popularity might have, back then).
    simulate_logs(user=member, candidates=candidates, n=200, epsilon=0.5, scores=[1.0, 2.0, 3.0, 4.0, 5.0])
    # Fallback slates were scored by popularity whatever the policy: their logged top stands.
    fallback_scores = [1.0, 5.0, 3.0, 4.0, 2.0]
    simulate_logs(user=member, candidates=candidates, n=20, epsilon=0.5, seed=5, scores=fallback_scores, personal=False)
    log = ope_log_load(version=VERSION)
    assert log.read == 220 and sum(log.fallback) == 20
    catalog = Catalog(candidate_ids={c.pk for c in candidates}, user_ids={member.pk})
    by_popularity = target_arrays(
        log=log, target=TargetPolicy(epsilon=0.2, scoring=SCORING_POPULARITY), catalog=catalog
    )
    p_top, p_other = ranker_propensities(epsilon=0.2, k=K)
    for i, chosen in enumerate(log.chosen):
        logged = candidates[1].pk if log.fallback[i] else candidates[-1].pk
        assert log.logged_top[i] == logged
        top = logged if log.fallback[i] else candidates[0].pk  # as logged / the most popular now
        assert by_popularity.top[i] == top
        assert by_popularity.propensity[i] == (p_top if chosen == top else p_other)
    result = ope_evaluate(version=VERSION, candidate=TargetPolicy(epsilon=0.2, scoring=SCORING_POPULARITY))
    assert result.usable == 220 and any("recomputed" in note for note in result.notes)


def test_the_lift_of_a_better_and_a_worse_candidate(logs):
    better = ope_lift(version=VERSION, candidate=TargetPolicy(epsilon=0.05), baseline=TargetPolicy(epsilon=0.3))
    worse = ope_lift(version=VERSION, candidate=TargetPolicy(epsilon=1.0), baseline=TargetPolicy(epsilon=0.3))
    same = ope_lift(version=VERSION, candidate=TargetPolicy(epsilon=0.3), baseline=TargetPolicy(epsilon=0.3))
    assert better.estimate is not None and worse.estimate is not None and same.estimate is not None
    assert (
        better.estimate.lower > 0 and better.estimate.lower < true_value(0.05) - true_value(0.3) < better.estimate.upper
    )
    assert worse.estimate.upper < 0
    assert same.estimate.value == pytest.approx(0.0, abs=1e-12)


def test_the_command_prints_the_estimates_and_refuses_a_missing_version(logs):
    out = StringIO()
    call_command("ope_evaluate", "--version", VERSION, "--epsilon", "0.05", "--no-progress", stdout=out)
    text = out.getvalue()
    assert f"usable {N}" in text and "observed mean" in text
    for name in ("ips", "snips", "dr"):
        assert f"{name}: " in text
    with pytest.raises(CommandError, match="no_such"):
        call_command("ope_evaluate", "--version", "no_such", "--epsilon", "0.05", "--no-progress")


def test_the_api_is_staff_only_and_answers_400_404_and_the_estimates(client, django_user_model, member, logs):
    url = "/api/staff/discovery/ope"
    body = {"version": VERSION, "candidate": {"epsilon": 0.05, "scoring": "affinity"}}
    client.force_login(member)
    assert client.post(url, body, content_type="application/json").status_code == 403
    staff = django_user_model.objects.create_user(username="ope-staff", is_staff=True)
    client.force_login(staff)
    answer = client.post(url, body, content_type="application/json")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["usable"] == N and set(data["estimates"]) == {"ips", "snips", "dr"}
    assert data["estimates"]["dr"]["lower"] < data["estimates"]["dr"]["value"] < data["estimates"]["dr"]["upper"]
    missing = client.post(url, body | {"version": "nope"}, content_type="application/json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    no_version = client.post(url, {"candidate": {"epsilon": 0.05}}, content_type="application/json")
    assert no_version.status_code == 400 and "version" in no_version.json()["error"]["fields"]
    bad = client.post(url, {"version": VERSION, "candidate": {"epsilon": "0.05"}}, content_type="application/json")
    assert bad.status_code == 400


def test_no_hostile_body_makes_the_ope_api_answer_a_server_error(django_user_model, logs):
    from rest_framework.test import APIClient

    from tests.support.hostile import HOSTILE_BODIES, field_bodies

    client = APIClient(raise_request_exception=False)
    client.force_authenticate(django_user_model.objects.create_user(username="hostile-ope", is_staff=True))
    bodies = {**HOSTILE_BODIES, **field_bodies(fields=["version", "candidate", "since", "until", "max_decisions"])}
    failures = []
    for label, body in bodies.items():
        answer = client.generic("POST", "/api/staff/discovery/ope", data=body, content_type="application/json")
        if answer.status_code >= 500 or (answer.status_code >= 400 and "error" not in answer.json()):
            failures.append(f"{label}: {answer.status_code}")
    nested = [
        {"version": VERSION, "candidate": {"epsilon": value, "scoring": scoring}}
        for value in (-1, 2, None, "0.1", True, [], {}, 1e308)
        for scoring in ("affinity", "x", None, 1)
    ]
    for body in nested:
        answer = client.post("/api/staff/discovery/ope", body, format="json")
        if answer.status_code != 400:
            failures.append(f"{body}: {answer.status_code}")
    assert failures == []
