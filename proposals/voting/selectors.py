"""Reads of the voting loop. Nothing here writes, and nothing here imports a services module."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models.functions import Now

from matchplatform.exceptions import ErrorCode, NotFound
from proposals.ids import public_id_parse
from proposals.models import Proposal, ProposalStatus, ProposalVoter, SystemMetric


def proposal_next_for_voter(*, user: User) -> Proposal | None:
    """The voter's open assignment with the nearest deadline."""
    assignment = (
        ProposalVoter.objects.filter(
            voter=user, voted=False, proposal__status=ProposalStatus.VOTING, proposal__deadline__gt=Now()
        )
        .select_related("proposal", "proposal__member_a__profile", "proposal__member_b__profile")
        .order_by("proposal__deadline", "proposal_id")
        .first()
    )
    return assignment.proposal if assignment is not None else None


def proposal_for_viewer(*, user: User, proposal_id: object) -> Proposal:
    """A proposal for its voters and staff; to anyone else it does not exist."""
    qs = Proposal.objects.select_related("member_a__profile", "member_b__profile")
    if not user.is_staff:
        qs = qs.filter(voters__voter=user)
    proposal = qs.filter(public_id=public_id_parse(proposal_id)).first()
    if proposal is None:
        raise NotFound("No such proposal.", code=ErrorCode.PROPOSAL_NOT_FOUND)
    return proposal


def metrics_latest() -> SystemMetric | None:
    return SystemMetric.objects.order_by("-recorded_at").first()
