"""A Hypothesis state machine drives proposals, votes and the clock, and checks the
loop's invariants after every step.

Each example runs inside a savepoint of the test's transaction and is rolled back at
teardown, so every example starts from the same community and an empty loop.

The clock: the services read the database's clock (Django's ``Now()`` is PostgreSQL's
``statement_timestamp()``). The machine moves it forwards by shifting every stored
timestamp backwards. Real time still runs underneath (milliseconds per step), so a check
whose outcome hinges on a deadline crossed *during* a call accepts either side of it.

After the machine: the same machine with the refill's liveness property, and the refill's
two liveness bugs as plain tests (the first fixed, the second still open).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.test import override_settings
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from matchplatform.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from ops.invariants import invariant_evaluate, invariants_all
from proposals.identity.services import member_create
from proposals.matches.services import match_decide, matches_expire, message_post
from proposals.models import (
    OPEN_PAIR_STATUSES,
    Conversation,
    Match,
    Message,
    Profile,
    Proposal,
    ProposalStatus,
    ProposalVoter,
    Vote,
    pair_hash_of,
)
from proposals.vocab import INTERESTS
from proposals.voting.services import (
    proposal_open_for_voter,
    proposal_queue_refill,
    proposals_finalize_due,
    proposals_open,
    vote_cast,
)

pytestmark = pytest.mark.django_db

COMMUNITY = 14
VOTERS = 3
THRESHOLD = 2
QUEUE_LOW, QUEUE_HIGH = 4, 6
VOTING_LOW, VOTING_HIGH = 2, 3
WINDOW = 60
MATCH_TTL = 120
COOLDOWN_DAYS = 30

LOOP_SETTINGS = {
    "PROPOSALS_VOTERS_PER_PROPOSAL": VOTERS,
    "PROPOSALS_APPROVE_THRESHOLD": THRESHOLD,
    "PROPOSALS_QUEUE_LOW": QUEUE_LOW,
    "PROPOSALS_QUEUE_HIGH": QUEUE_HIGH,
    "PROPOSALS_VOTING_LOW": VOTING_LOW,
    "PROPOSALS_VOTING_HIGH": VOTING_HIGH,
    "PROPOSALS_VOTING_WINDOW_SECONDS": WINDOW,
    "PROPOSALS_MATCH_TTL_SECONDS": MATCH_TTL,
    "PROPOSALS_COOLDOWN_DAYS": COOLDOWN_DAYS,
}

FINAL = (ProposalStatus.APPROVED, ProposalStatus.REJECTED)
BOGUS_ID = "00000000-0000-0000-0000-000000000000"
LIVENESS = {"proposals.matches_expire_on_time"}

# Half the time a few seconds, so that votes land inside the window; otherwise around the
# voting window (60 s), the match TTL (120 s), the five-minute "stuck" limit, or past the
# cool-down, so that rejected pairs may come back.
CLOCK_STEPS = st.one_of(
    st.integers(min_value=1, max_value=20),
    st.sampled_from([59, 60, 61, 119, 120, 121, 299, 300, 301, 3600, (COOLDOWN_DAYS + 1) * 86400]),
)

TIMESTAMPS: list[tuple[Any, tuple[str, ...]]] = [
    (Proposal, ("created_at", "voting_started_at", "deadline", "finalized_at")),
    (ProposalVoter, ("assigned_at",)),
    (Vote, ("created_at",)),
    (Match, ("created_at", "expires_at", "decided_at")),
    (Conversation, ("created_at", "closed_at")),
    (Message, ("created_at",)),
]


def _clock() -> datetime:
    """The database's clock, as the services' ``Now()`` reads it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def _ids(qs: Any) -> list[int]:
    return list(qs.order_by("id").values_list("id", flat=True))


# Every row of the loop's tables, in full, as one digest per table.
_FINGERPRINT_SQL = "SELECT " + ", ".join(
    f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {model._meta.db_table} t)"
    for model in (Proposal, ProposalVoter, Vote, Profile, Match, Conversation, Message)
)


def _fingerprint() -> tuple[Any, ...]:
    """Everything a refused call must leave exactly as it was (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT_SQL)
        return tuple(cursor.fetchone())


def _eligible_pairs() -> list[tuple[int, int]]:
    """Pairs of free active members a refill may propose: not open (queued, voting,
    approved), not turned down (proposal rejected, match rejected or expired) within the
    cool-down. Written from the rules, not from the service."""
    cutoff = _clock() - timedelta(days=COOLDOWN_DAYS)
    blocked = set(Proposal.objects.filter(status__in=OPEN_PAIR_STATUSES).values_list("pair_hash", flat=True))
    blocked |= set(
        Proposal.objects.filter(status=ProposalStatus.REJECTED, finalized_at__gte=cutoff).values_list(
            "pair_hash", flat=True
        )
    )
    blocked |= set(
        Match.objects.filter(
            status__in=[Match.Status.EXPIRED, Match.Status.REJECTED], decided_at__gte=cutoff
        ).values_list("proposal__pair_hash", flat=True)
    )
    free = sorted(set(Profile.objects.filter(is_active=True).values_list("user_id", flat=True)) - _busy())
    return [(a, b) for i, a in enumerate(free) for b in free[i + 1 :] if pair_hash_of(a, b) not in blocked]


def _pick(data: st.DataObject, items: Sequence[Any], label: str) -> Any:
    """One of ``items``, by a draw whose shape does not depend on how many there are.

    Which rows exist can depend on the wall clock (a deadline a second away passes during a
    slow step), and Hypothesis, replaying a run's first steps seconds later, fails the test as
    "inconsistent data generation" when a replay draws differently: ``sampled_from`` over a
    list of another length (or of one item, which draws nothing) would. A fixed-range integer
    taken modulo the length draws the same whatever the rows; it shrinks to the first item."""
    return items[data.draw(st.integers(min_value=0, max_value=1023), label=label) % len(items)]


def _draw_from(data: st.DataObject, *querysets: Any) -> int:
    """A row id from one of the non-empty querysets, each as likely as the others: the rare
    edges (a deadline just passed, nobody has swept yet) come up as often as the common case."""
    groups = [ids for ids in map(_ids, querysets) if ids]
    return _pick(data, _pick(data, groups, "group"), "row")


def _busy() -> set[int]:
    """Members on a side of a queued or voting proposal."""
    rows = Proposal.objects.filter(status__in=[ProposalStatus.QUEUED, ProposalStatus.VOTING])
    return {m for pair in rows.values_list("member_a_id", "member_b_id") for m in pair}


class ProposalMachine(RuleBasedStateMachine):
    # A liveness property of the refill, checked by RefillLivenessMachine.
    check_refill_liveness = False

    def __init__(self, *, members: list[User]) -> None:
        super().__init__()
        self.members = members
        self.by_id = {m.pk: m for m in members}
        self.shift = timedelta(0)  # how far the machine has moved the clock
        self.finalized: dict[int, tuple[Any, ...]] = {}  # proposal -> its state when first seen final
        self.votes: dict[int, dict[int, str]] = {}  # proposal -> voter -> choice, as cast
        self.messages: Counter[int] = Counter()  # conversation -> messages posted
        self.finalized_upto: datetime | None = None  # the last finalize's start, until the clock moves
        self.has: dict[str, bool] = dict.fromkeys(
            ("proposal", "assignment", "unvoted", "voting", "vote", "match"), False
        )
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        with connection.cursor() as cursor:  # the refill's ORDER BY random(), repeatable
            cursor.execute("SELECT setseed(0.5)")

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _refused(self, error: type[Exception], call: Callable[..., Any], **kwargs: Any) -> None:
        before = _fingerprint()
        with pytest.raises(error):
            call(**kwargs)
        assert _fingerprint() == before, f"{call.__name__} was refused but changed the state"

    # -- the generation queue and opening -----------------------------------------------
    @initialize()
    def start_the_loop(self) -> None:
        self.beat()

    @rule(sweeper=st.sampled_from(["beat", "refill", "forced refill", "open", "forced open", "finalize", "expire"]))
    def sweep(self, sweeper: str) -> None:
        """One of beat's sweepers (a forced one, as an operator would run it), or a whole tick."""
        run = {
            "beat": self.beat,
            "refill": lambda: self.refill(force=False),
            "forced refill": lambda: self.refill(force=True),
            "open": lambda: self.open_for_voting(force=False),
            "forced open": lambda: self.open_for_voting(force=True),
            "finalize": self.finalize_due,
            "expire": self.expire_matches,
        }
        run[sweeper]()

    def beat(self) -> None:
        self.refill(force=False)
        self.open_for_voting(force=False)
        self.finalize_due()
        self.expire_matches()

    def refill(self, force: bool) -> None:
        queued = Proposal.objects.filter(status=ProposalStatus.QUEUED)
        before, busy, existing = queued.count(), _busy(), _ids(Proposal.objects)
        eligible = _eligible_pairs()
        created = proposal_queue_refill(force=force)
        new = list(Proposal.objects.exclude(pk__in=existing))
        assert len(new) == created
        assert queued.count() == before + created
        if before >= QUEUE_LOW and not force:
            assert created == 0
        assert queued.count() <= max(before, QUEUE_HIGH)
        people = [m for p in new for m in (p.member_a_id, p.member_b_id)]
        assert len(people) == len(set(people)), "a member is in two new proposals"
        assert not set(people) & busy, "a busy member was proposed again"
        for p in new:
            assert p.status == ProposalStatus.QUEUED
            assert (p.voters_required, p.approve_threshold) == (VOTERS, THRESHOLD)
            assert (p.member_a_id, p.member_b_id) in eligible, f"{p} is open or cooling down"
        if self.check_refill_liveness and (force or before < QUEUE_LOW) and before < QUEUE_HIGH:
            # Best first, each member once, skipping blocked pairs: once it stops short of
            # the high mark, no two members it left free can still be paired.
            left = _eligible_pairs()
            assert queued.count() == QUEUE_HIGH or not left, f"queue at {queued.count()}, pairs left: {left}"

    def open_for_voting(self, force: bool) -> None:
        voting = Proposal.objects.filter(status=ProposalStatus.VOTING)
        before, queued = voting.count(), Proposal.objects.filter(status=ProposalStatus.QUEUED).count()
        existing = _ids(voting)
        start = _clock()
        opened = proposals_open(force=force)
        end = _clock()
        # 13 active members: every proposal can always get its 3 voters.
        expected = 0 if before >= VOTING_LOW and not force else max(0, min(queued, VOTING_HIGH - before))
        assert opened == expected
        assert voting.count() == before + opened
        for p in voting.exclude(pk__in=existing):
            assert start <= p.voting_started_at <= end
            assert p.deadline == p.voting_started_at + timedelta(seconds=WINDOW)

    @rule(index=st.integers(min_value=0, max_value=COMMUNITY - 1))
    def open_for_a_voter(self, index: int) -> None:
        user = self.members[index]
        start = _clock()
        proposal = proposal_open_for_voter(user=user)
        end = _clock()
        if proposal is None:
            left = Proposal.objects.filter(status=ProposalStatus.QUEUED).exclude(Q(member_a=user) | Q(member_b=user))
            assert not left.exists(), "nothing was opened for the voter although a proposal was queued"
            return
        assert proposal.status == ProposalStatus.VOTING
        assert user.pk not in (proposal.member_a_id, proposal.member_b_id)
        assert ProposalVoter.objects.filter(proposal=proposal, voter=user, voted=False).exists()
        assert start <= proposal.voting_started_at <= end
        assert proposal.deadline == proposal.voting_started_at + timedelta(seconds=WINDOW)

    # -- votes --------------------------------------------------------------------------
    @precondition(lambda self: self.has["unvoted"])
    @rule(data=st.data(), choice=st.sampled_from(Vote.Choice.values))
    def vote(self, data: st.DataObject, choice: str) -> None:
        unvoted = ProposalVoter.objects.filter(voted=False)
        voting, now = unvoted.filter(proposal__status=ProposalStatus.VOTING), _clock()
        pk = _draw_from(
            data,
            voting.filter(proposal__deadline__gt=now),  # open
            voting.filter(proposal__deadline__lte=now),  # past its deadline, not finalized yet
            unvoted,
        )
        self._cast(pk, choice)

    @precondition(lambda self: self.has["voting"])
    @rule(data=st.data(), choice=st.sampled_from(Vote.Choice.values))
    def all_voters_vote_alike(self, data: st.DataObject, choice: str) -> None:
        """Every voter of one proposal votes the same way, one after another: a yes approves
        it at the threshold and the rest are refused; three no leave it to its deadline."""
        proposal_id = _draw_from(
            data,
            Proposal.objects.filter(status=ProposalStatus.VOTING, deadline__gt=_clock()),
            Proposal.objects.filter(status=ProposalStatus.VOTING),
        )
        for pk in _ids(ProposalVoter.objects.filter(proposal_id=proposal_id, voted=False)):
            self._cast(pk, choice)

    def _cast(self, assignment_id: int, choice: str) -> None:
        """An assigned voter votes: counted while the proposal is open, refused after."""
        assignment = ProposalVoter.objects.select_related("proposal", "voter").get(pk=assignment_id)
        proposal, voter = assignment.proposal, assignment.voter
        if proposal.status != ProposalStatus.VOTING or proposal.deadline <= _clock():
            self._refused(Conflict, vote_cast, user=voter, proposal_id=proposal.public_id, choice=choice)
            return
        load = Profile.objects.get(user=voter).open_assignments
        before, start = _fingerprint(), _clock()
        try:
            result = vote_cast(user=voter, proposal_id=proposal.public_id, choice=choice)
        except Conflict:
            assert proposal.deadline <= _clock(), "a vote was refused before the deadline"
            assert _fingerprint() == before
            return
        end = _clock()
        assert result.created and result.vote.choice == choice
        cast = self.votes.setdefault(proposal.pk, {})
        cast[voter.pk] = choice
        proposal.refresh_from_db()
        tally = Counter(cast.values())
        assert (proposal.yes_count, proposal.no_count) == (tally["yes"], tally["no"])
        assert Profile.objects.get(user=voter).open_assignments == load - 1
        if proposal.yes_count >= THRESHOLD:
            assert proposal.status == ProposalStatus.APPROVED
            assert start <= proposal.finalized_at <= end
        else:
            assert proposal.status == ProposalStatus.VOTING

    @precondition(lambda self: self.has["proposal"])
    @rule(
        data=st.data(),
        kind=st.sampled_from(["outsider", "unknown proposal", "same vote again", "changed vote", "nonsense"]),
        choice=st.sampled_from(Vote.Choice.values),
    )
    def vote_out_of_turn(self, data: st.DataObject, kind: str, choice: str) -> None:
        """A member who is not a voter (the pair included) is refused, on any proposal; so is a
        changed vote, open or not, and a choice that is neither yes nor no. The same vote
        twice is harmless."""
        if kind in ("same vote again", "changed vote") and self.has["vote"]:
            vote = Vote.objects.select_related("voter", "proposal").get(pk=_pick(data, _ids(Vote.objects), "vote"))
            if kind == "changed vote":
                other = "no" if vote.choice == "yes" else "yes"
                self._refused(Conflict, vote_cast, user=vote.voter, proposal_id=vote.proposal.public_id, choice=other)
                return
            before = _fingerprint()
            result = vote_cast(user=vote.voter, proposal_id=vote.proposal.public_id, choice=vote.choice)
            assert not result.created and result.vote.pk == vote.pk
            assert _fingerprint() == before
            return
        proposal = Proposal.objects.get(pk=_pick(data, _ids(Proposal.objects), "proposal"))
        voters = set(ProposalVoter.objects.filter(proposal=proposal).values_list("voter_id", flat=True))
        if kind == "nonsense" and voters:
            voter = self.by_id[_pick(data, sorted(voters), "voter")]
            nonsense = data.draw(st.sampled_from(["", "YES", "maybe", "yes "]), label="choice")
            self._refused(InvalidInput, vote_cast, user=voter, proposal_id=proposal.public_id, choice=nonsense)
            return
        user = _pick(data, [m for m in self.members if m.pk not in voters], "outsider")
        if kind == "unknown proposal":
            self._refused(NotFound, vote_cast, user=user, proposal_id=BOGUS_ID, choice=choice)
        else:
            self._refused(Forbidden, vote_cast, user=user, proposal_id=proposal.public_id, choice=choice)

    # -- the clock and finalization -----------------------------------------------------
    @rule(seconds=CLOCK_STEPS, then_beat=st.booleans())
    def advance(self, seconds: int, then_beat: bool) -> None:
        """Time passes; beat ticks at once, or not yet (deadlines passed, nothing swept)."""
        delta = timedelta(seconds=seconds)
        for model, fields in TIMESTAMPS:
            model.objects.update(**{f: F(f) - delta for f in fields})
        self.shift += delta
        self.finalized_upto = None
        if then_beat:
            self.beat()

    def finalize_due(self) -> None:
        voting = dict(
            (pk, (yes, no))
            for pk, yes, no in Proposal.objects.filter(status=ProposalStatus.VOTING).values_list(
                "id", "yes_count", "no_count"
            )
        )
        start = _clock()
        done = proposals_finalize_due()
        end = _clock()
        closed = Proposal.objects.filter(pk__in=voting).exclude(status=ProposalStatus.VOTING)
        assert done == closed.count()
        for proposal in closed:
            yes, no = voting[proposal.pk]
            assert proposal.status == (ProposalStatus.APPROVED if yes > no else ProposalStatus.REJECTED)
            assert proposal.deadline <= end, "finalized before its deadline"
            assert start <= proposal.finalized_at <= end
        assert not Proposal.objects.filter(status=ProposalStatus.VOTING, deadline__lte=start).exists()
        self.finalized_upto = start
        for inv in invariants_all():
            if inv.app == "proposals":  # the figures too: none may break, and nothing is stuck
                outcome = invariant_evaluate(inv)
                assert outcome.state != "error", outcome
                if inv.name == "proposals.stuck_proposals":
                    assert outcome.state == "ok", outcome

    # -- matches and conversations ------------------------------------------------------
    @precondition(lambda self: self.has["match"])
    @rule(data=st.data(), accept=st.booleans())
    def decide(self, data: st.DataObject, accept: bool) -> None:
        """One of the pair accepts or rejects: both accepts accept, one reject rejects and
        closes the conversation; once decided or expired, the match no longer changes."""
        match = Match.objects.get(pk=self._draw_match(data))
        decision = Match.Decision.ACCEPT if accept else Match.Decision.REJECT
        user = self.by_id[data.draw(st.sampled_from((match.member_a_id, match.member_b_id)), label="side")]
        if match.status != Match.Status.PENDING or match.expires_at <= _clock():
            self._refused(Conflict, match_decide, user=user, match_id=match.public_id, decision=decision)
            return
        other = match.decision_b if user.pk == match.member_a_id else match.decision_a
        mine = match.decision_a if user.pk == match.member_a_id else match.decision_b
        if mine and mine != decision:  # an answer is final
            self._refused(Conflict, match_decide, user=user, match_id=match.public_id, decision=decision)
            return
        if mine == decision:  # the same answer again changes nothing
            before = _fingerprint()
            assert match_decide(user=user, match_id=match.public_id, decision=decision).status == match.status
            assert _fingerprint() == before
            return
        before, start = _fingerprint(), _clock()
        try:
            result = match_decide(user=user, match_id=match.public_id, decision=decision)
        except Conflict:
            assert match.expires_at <= _clock(), "a decision was refused before the match expired"
            assert _fingerprint() == before
            return
        end = _clock()
        if not accept:
            expected = Match.Status.REJECTED
        elif other == Match.Decision.ACCEPT:
            expected = Match.Status.ACCEPTED
        else:
            expected = Match.Status.PENDING
        assert result.status == expected
        closed_at = Conversation.objects.get(match=match).closed_at
        if expected == Match.Status.REJECTED:
            assert closed_at is not None and start <= closed_at <= end
        else:
            assert closed_at is None
        if expected != Match.Status.PENDING:
            assert result.decided_at is not None and start <= result.decided_at <= end

    @precondition(lambda self: self.has["match"])
    @rule(data=st.data(), body=st.sampled_from(["Hello!", "  hi  ", "x" * 4000]))
    def post_message(self, data: st.DataObject, body: str) -> None:
        """One of the pair speaks: heard while the conversation is open, refused after."""
        conversation = Conversation.objects.select_related("match").get(match_id=self._draw_match(data))
        match = conversation.match
        user = self.by_id[data.draw(st.sampled_from((match.member_a_id, match.member_b_id)), label="side")]
        kwargs = {"conversation_id": conversation.public_id, "body": body}
        if conversation.closed_at is not None:
            self._refused(Conflict, message_post, user=user, **kwargs)
            return
        message = message_post(user=user, **kwargs)
        assert message.body == body.strip() and message.sender_id == user.pk
        self.messages[conversation.pk] += 1

    @precondition(lambda self: self.has["match"])
    @rule(data=st.data(), what=st.sampled_from(["accept", "reject", "post"]))
    def a_stranger_meddles(self, data: st.DataObject, what: str) -> None:
        """To anyone outside the pair, a match and its conversation do not exist."""
        match = Match.objects.select_related("conversation").get(pk=self._draw_match(data))
        pair = (match.member_a_id, match.member_b_id)
        user = _pick(data, [m for m in self.members if m.pk not in pair], "stranger")
        if what == "post":
            self._refused(NotFound, message_post, user=user, conversation_id=match.conversation.public_id, body="hi")
        else:
            self._refused(NotFound, match_decide, user=user, match_id=match.public_id, decision=what)

    def _draw_match(self, data: st.DataObject) -> int:
        pending, now = Match.objects.filter(status=Match.Status.PENDING), _clock()
        return _draw_from(
            data,
            pending.filter(expires_at__gt=now),  # still open
            pending.filter(expires_at__lte=now),  # expired, not swept yet
            Match.objects.all(),
        )

    def expire_matches(self) -> None:
        pending = _ids(Match.objects.filter(status=Match.Status.PENDING))
        start = _clock()
        done = matches_expire()
        end = _clock()
        expired = Match.objects.filter(pk__in=pending, status=Match.Status.EXPIRED).select_related("conversation")
        assert done == expired.count()
        for match in expired:
            assert match.expires_at <= end, "expired early"
            assert start <= match.decided_at <= end
            closed_at = match.conversation.closed_at
            assert closed_at is not None and start <= closed_at <= end
        assert not Match.objects.filter(status=Match.Status.PENDING, expires_at__lte=start).exists()

    # -- invariants, after every step ---------------------------------------------------
    @invariant()
    def registered_row_invariants_hold(self) -> None:
        for inv in invariants_all():
            # "Expired on time" is about beat running, and this machine moves the clock
            # without beat on purpose; expire_matches checks the sweep itself.
            if inv.app == "proposals" and inv.kind == "rows" and inv.name not in LIVENESS:
                outcome = invariant_evaluate(inv)
                assert outcome.state == "ok", outcome

    @invariant()
    def the_loop_is_consistent(self) -> None:
        """The model's checks, over one snapshot of the loop's tables."""
        proposals = {
            row["id"]: row
            for row in Proposal.objects.values(
                "id", "status", "member_a_id", "member_b_id", "pair_hash", "yes_count", "no_count",
                "voters_required", "approve_threshold", "voting_started_at", "deadline", "finalized_at",
            )
        }  # fmt: skip
        assignments = list(ProposalVoter.objects.values_list("id", "proposal_id", "voter_id", "voted"))
        votes = list(Vote.objects.values_list("assignment_id", "proposal_id", "voter_id", "choice"))
        profiles = list(Profile.objects.values_list("user_id", "open_assignments", "is_active"))
        matches = list(
            Match.objects.values(
                "id", "proposal_id", "member_a_id", "member_b_id", "status", "decision_a", "decision_b",
                "decided_at", "conversation__id", "conversation__closed_at",
            )
        )  # fmt: skip
        messages = list(Message.objects.values_list("conversation_id", "sender_id", "created_at"))
        self.has = {
            "proposal": bool(proposals),
            "assignment": bool(assignments),
            "unvoted": any(not voted for *_, voted in assignments),
            "voting": any(p["status"] == ProposalStatus.VOTING for p in proposals.values()),
            "vote": bool(votes),
            "match": bool(matches),
        }
        self._check_pairs(proposals, profiles)
        self._check_lifecycle(proposals)
        self._check_voters(proposals, assignments)
        self._check_counts(proposals, assignments, votes)
        self._check_approvals(proposals, matches)
        self._check_finalized_frozen(proposals, assignments)
        self._check_open_assignments(proposals, assignments, profiles)
        self._check_matches_and_messages(matches, messages)
        self._check_nothing_due_after_a_finalize(proposals)

    def _check_pairs(self, proposals: dict[int, dict], profiles: list[tuple]) -> None:
        """No pair open twice; nobody on a side of two queued or voting proposals; nobody
        inactive on a side of anything."""
        hashes = [p["pair_hash"] for p in proposals.values() if p["status"] in OPEN_PAIR_STATUSES]
        assert len(hashes) == len(set(hashes)), f"a pair is open twice: {Counter(hashes).most_common(1)}"
        busy = [
            m
            for p in proposals.values()
            if p["status"] in (ProposalStatus.QUEUED, ProposalStatus.VOTING)
            for m in (p["member_a_id"], p["member_b_id"])
        ]
        assert len(busy) == len(set(busy)), f"a member is on a side of two open proposals: {Counter(busy)}"
        inactive = {user_id for user_id, _, active in profiles if not active}
        for p in proposals.values():
            a, b = p["member_a_id"], p["member_b_id"]
            assert a < b and p["pair_hash"] == pair_hash_of(a, b), p
            assert not {a, b} & inactive, f"an inactive member was proposed: {p}"

    def _check_lifecycle(self, proposals: dict[int, dict]) -> None:
        for p in proposals.values():
            assert (p["deadline"] is None) == (p["status"] == ProposalStatus.QUEUED), p
            assert (p["finalized_at"] is None) == (p["status"] not in FINAL), p
            if p["deadline"] is not None:
                assert p["deadline"] == p["voting_started_at"] + timedelta(seconds=WINDOW), p

    def _check_voters(self, proposals: dict[int, dict], assignments: list[tuple]) -> None:
        """Every opened proposal has exactly its N voters, none of them in the pair."""
        voters: dict[int, list[int]] = {}
        for _, proposal_id, voter_id, _ in assignments:
            voters.setdefault(proposal_id, []).append(voter_id)
        for pk, p in proposals.items():
            mine = voters.get(pk, [])
            if p["status"] == ProposalStatus.QUEUED:
                assert not mine, f"queued proposal {pk} has voters {mine}"
                continue
            assert len(mine) == len(set(mine)) == p["voters_required"] == VOTERS, f"proposal {pk}: voters {mine}"
            assert p["member_a_id"] not in mine and p["member_b_id"] not in mine, f"proposal {pk}: a side votes"

    def _check_counts(self, proposals: dict[int, dict], assignments: list[tuple], votes: list[tuple]) -> None:
        """yes_count / no_count are the votes stored, which are the votes the model cast."""
        stored: dict[int, Counter[str]] = {}
        for _, proposal_id, _, choice in votes:
            stored.setdefault(proposal_id, Counter())[choice] += 1
        for pk, p in proposals.items():
            tally = stored.get(pk, Counter())
            counts = (p["yes_count"], p["no_count"])
            assert counts == (tally["yes"], tally["no"]), f"proposal {pk}: counts {counts}, votes {dict(tally)}"
        cast = {(p, v): c for p, chosen in self.votes.items() for v, c in chosen.items()}
        assert {(p, v): c for _, p, v, c in votes} == cast, "the votes stored are not the votes cast"
        voted = {assignment_id for assignment_id, *_ in votes}
        for pk, _, _, flag in assignments:
            assert flag == (pk in voted), f"assignment {pk}: voted={flag}"

    def _check_approvals(self, proposals: dict[int, dict], matches: list[dict]) -> None:
        """The threshold approves; an approval has exactly one match and one conversation."""
        for pk, p in proposals.items():
            if p["yes_count"] >= p["approve_threshold"]:
                assert p["status"] == ProposalStatus.APPROVED, f"proposal {pk} reached the threshold: {p}"
        per_proposal = Counter(m["proposal_id"] for m in matches)
        for pk, p in proposals.items():
            want = 1 if p["status"] == ProposalStatus.APPROVED else 0
            assert per_proposal[pk] == want, f"proposal {pk} ({p['status']}) has {per_proposal[pk]} matches"
        for m in matches:
            p = proposals[m["proposal_id"]]
            assert (m["member_a_id"], m["member_b_id"]) == (p["member_a_id"], p["member_b_id"]), m
            assert m["conversation__id"] is not None, f"match {m['id']} has no conversation"

    def _check_finalized_frozen(self, proposals: dict[int, dict], assignments: list[tuple]) -> None:
        """A finalized proposal never changes again (the clock aside)."""
        voters: dict[int, set[tuple[int, bool]]] = {}
        for _, proposal_id, voter_id, flag in assignments:
            voters.setdefault(proposal_id, set()).add((voter_id, flag))
        final = set()
        for pk, p in proposals.items():
            if p["status"] not in FINAL:
                continue
            state = (
                p["status"],
                p["yes_count"],
                p["no_count"],
                p["finalized_at"] + self.shift,  # as of the machine's start: moving the clock is no change
                frozenset(voters.get(pk, ())),
            )
            assert self.finalized.setdefault(pk, state) == state, f"finalized proposal {pk} changed"
            final.add(pk)
        assert final >= set(self.finalized), "a finalized proposal was reopened"

    def _check_open_assignments(
        self, proposals: dict[int, dict], assignments: list[tuple], profiles: list[tuple]
    ) -> None:
        """Profile.open_assignments is the member's unvoted assignments on voting proposals."""
        load = Counter(
            voter_id
            for _, proposal_id, voter_id, voted in assignments
            if not voted and proposals[proposal_id]["status"] == ProposalStatus.VOTING
        )
        for user_id, stored, _ in profiles:
            assert stored == load[user_id], f"member {user_id}: open_assignments {stored}, really {load[user_id]}"

    def _check_matches_and_messages(self, matches: list[dict], messages: list[tuple]) -> None:
        """A conversation is closed exactly when its match was rejected or expired; nothing is
        said in it after it closed, and only the pair speak."""
        conversations = {}
        for m in matches:
            closed_at = m["conversation__closed_at"]
            conversations[m["conversation__id"]] = (m["member_a_id"], m["member_b_id"], closed_at)
            assert (closed_at is not None) == (m["status"] in (Match.Status.REJECTED, Match.Status.EXPIRED)), m
            assert (m["decided_at"] is None) == (m["status"] == Match.Status.PENDING), m
            if m["status"] == Match.Status.ACCEPTED:
                assert m["decision_a"] == m["decision_b"] == Match.Decision.ACCEPT, m
            if m["status"] == Match.Status.REJECTED:
                assert Match.Decision.REJECT in (m["decision_a"], m["decision_b"]), m
        for conversation_id, sender_id, created_at in messages:
            a, b, closed_at = conversations[conversation_id]
            assert sender_id in (a, b), f"a message from outside the pair in conversation {conversation_id}"
            assert closed_at is None or created_at <= closed_at, (
                f"a message after conversation {conversation_id} closed"
            )
        assert Counter(c for c, *_ in messages) == +self.messages, "the messages stored are not the messages posted"

    def _check_nothing_due_after_a_finalize(self, proposals: dict[int, dict]) -> None:
        if self.finalized_upto is None:
            return
        for pk, p in proposals.items():
            if p["status"] == ProposalStatus.VOTING:
                assert p["deadline"] > self.finalized_upto, f"proposal {pk} was due at the last finalize: {p}"


@pytest.fixture
def community(db) -> list[User]:
    """14 members over a narrow vocabulary (many overlaps and ties), two of them private
    and the last one inactive (deterministic)."""
    rng = random.Random(7)
    members = [
        member_create(
            username=f"s{i:02d}",
            interests=rng.sample(INTERESTS[:8], 3),
            privacy="private" if i in (3, 9) else "public",
        )
        for i in range(COMMUNITY)
    ]
    Profile.objects.filter(user=members[-1]).update(is_active=False)
    return members


FAST = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    database=None,  # no example database (Hypothesis still caches constants in a git-ignored .hypothesis/)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    report_multiple_bugs=False,
)
# Shrinking a failure of this machine can take Hypothesis its full five minutes; where a
# minimal example is written out as a plain test, skip it.
GENERATE_ONLY = [Phase.explicit, Phase.generate]


def test_the_proposal_loop_keeps_its_invariants_under_any_sequence_of_steps(community):
    with override_settings(**LOOP_SETTINGS):
        run_state_machine_as_test(lambda: ProposalMachine(members=community), settings=FAST)


class RefillLivenessMachine(ProposalMachine):
    check_refill_liveness = True


def test_a_refill_leaves_no_two_pairable_members_out_under_any_sequence_of_steps(community):
    """Once the refill stops short of the high mark, no two members it left free can still be
    paired. Before the refill picked around blocked pairs, this failed within a few examples
    (shrunk: a beat, 60 s pass, a beat, a beat: the rejected pairs, still the best, were
    picked again, dropped, and their members left out)."""
    with override_settings(**LOOP_SETTINGS):
        run_state_machine_as_test(
            lambda: RefillLivenessMachine(members=community),
            settings=settings(FAST, max_examples=10, stateful_step_count=15, phases=GENERATE_ONLY),
        )


def test_a_pair_cooling_down_does_not_keep_its_two_members_out_of_the_queue(db):
    """A blocked pair must not use up its two members: (a, b) is the best pair, and while it
    cools down a and b are still proposed, with c."""
    with override_settings(**{**LOOP_SETTINGS, "PROPOSALS_VOTERS_PER_PROPOSAL": 1}):
        a = member_create(username="a", interests=["ai", "climate", "crypto"])
        b = member_create(username="b", interests=["ai", "climate", "crypto"])
        c = member_create(username="c", interests=["music"])
        assert proposal_queue_refill(force=True) == 1  # (a, b), the best pair; c waits
        assert proposals_open(force=True) == 1  # with c as its voter
        Proposal.objects.update(deadline=F("deadline") - timedelta(seconds=WINDOW))  # nobody votes in time
        assert proposals_finalize_due() == 1  # rejected: (a, b) cools down
        assert sorted(_eligible_pairs()) == sorted([tuple(sorted((a.pk, c.pk))), tuple(sorted((b.pk, c.pk)))])

        created = [proposal_queue_refill(force=True) for _ in range(3)]

        assert created[0] == 1, f"refills created {created} proposals though (a, c) and (b, c) were free"


# Member 1 was matched with members 2 to 7, its six best partners; 8 and 9 are strangers.
MANY_MATCHES = [
    ["devtools", "gaming", "music", "saas", "security", "space", "sports"],
    ["devtools", "gaming", "music", "saas", "security", "space", "sports"],
    ["devtools", "gaming", "music", "saas", "security", "space", "sports", "energy"],
    ["devtools", "gaming", "music", "saas", "security", "sports", "art"],
    ["saas", "security", "sports"],
    ["design", "devtools", "gaming", "music", "saas", "security", "space", "sports"],
    ["devtools", "space"],
    ["health", "product", "writing"],
    ["travel", "art", "energy"],
]


def test_a_member_matched_six_times_is_still_proposed(db):
    """Fails today. proposal_queue_refill picks around the blocked pairs it finds, but for at
    most five rounds: member 1's six past matches each take a round (one blocked pair shows up
    per pick), so after the fifth the last pick, (1, 5) or the like, is dropped after all and
    uses up 1 and 5, though (1, 9) and (5, 9) are free. Picking until no pick is blocked
    (it ends: the blocked set only grows) pairs them."""
    with override_settings(**LOOP_SETTINGS):
        members = [member_create(username=f"p{i}", interests=interests) for i, interests in enumerate(MANY_MATCHES)]
        first = members[0]
        for partner in members[1:7]:
            Proposal.objects.create(
                member_a=first,
                member_b=partner,
                pair_hash=pair_hash_of(first.pk, partner.pk),
                compatibility=0.9,
                status=ProposalStatus.APPROVED,
                voting_started_at=Now(),
                deadline=Now(),
                finalized_at=Now(),
            )

        created = proposal_queue_refill(force=True)

        left = _eligible_pairs()
        assert not left, f"the refill proposed {created} pairs and left these pairable: {left}"
