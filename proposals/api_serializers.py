"""The proposals API's serializers: strict input (what the schema says is what is taken) and
the output shapes the schema declares.

Input fields take JSON's types as they are: a number is not a string (``{"display_name": 0}``
is a 400, not the name "0"), and a choice is a string from its list. Their error messages
never repeat the value sent: it is the caller's own, may be anything (a lone surrogate, a
megabyte), and telling them what is allowed is more use to them.

Output serializers document the responses (the views build plain dicts, the feed's on its
hot path); the schema tests and schemathesis's response checks hold the two together.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from matchplatform.fields import StrictCharField, StrictChoiceField
from proposals.matches.terms import SORTS
from proposals.models import Match, MatchSource, MatchStatus, Profile, ProposalStatus, Vote
from proposals.vocab import INTERESTS


class ChoiceListField(serializers.ListField):
    """A list of choices with one error for the list ("each item is one of ..."), not one per
    position: a flat message reads better and renders as the error shape's list of strings."""

    default_error_messages = {"invalid_choice": "Each item must be one of: {allowed}."}

    def __init__(self, *, choices: Any, **kwargs: Any) -> None:
        super().__init__(child=StrictChoiceField(choices=choices), **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):  # keyed by position: an item was refused
                assert isinstance(self.child, StrictChoiceField)
                self.fail("invalid_choice", allowed=", ".join(self.child.choice_strings_to_values))
            raise


class NamedChoiceField(serializers.ChoiceField):
    """An output choice whose set is one named schema component (``ProposalStatus``...): the
    generator would otherwise name every set after its property, and several sets are called
    ``status`` across the API."""

    def __init__(self, *, enum_name: str, **kwargs: Any) -> None:
        self.enum_name = enum_name
        super().__init__(**kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field: NamedChoiceField = self.target
        component = ResolvedComponent(
            name=field.enum_name,
            type=ResolvedComponent.SCHEMA,
            schema={"type": "string", "enum": list(field.choices)},
            object=field.enum_name,
        )
        auto_schema.registry.register_on_missing(component)
        if field.allow_null:
            # As drf-spectacular writes a nullable choice: "nullable" beside a $ref to an enum
            # without null would still refuse null in a strict validator.
            return {"oneOf": [component.ref, {"enum": [None]}]}
        return component.ref


# -- input -------------------------------------------------------------------------------------
class ProfileInputSerializer(serializers.Serializer):
    display_name = StrictCharField(max_length=80, required=False)
    bio = StrictCharField(max_length=2000, required=False, allow_blank=True)
    interests = ChoiceListField(choices=INTERESTS, required=False, max_length=len(INTERESTS))
    privacy = StrictChoiceField(choices=Profile.Privacy.choices, required=False)


class VoteInputSerializer(serializers.Serializer):
    choice = StrictChoiceField(choices=Vote.Choice.choices)


class MessageInputSerializer(serializers.Serializer):
    body = StrictCharField(max_length=4000)


# -- output ------------------------------------------------------------------------------------
class ProfileOutputSerializer(serializers.Serializer):
    display_name = serializers.CharField()
    bio = serializers.CharField(allow_blank=True)
    interests = serializers.ListField(child=serializers.ChoiceField(choices=INTERESTS))
    privacy = serializers.ChoiceField(choices=Profile.Privacy.choices)
    wallet_address = serializers.CharField(allow_null=True, help_text="EIP-55 checksummed; null if none is linked.")
    open_assignments = serializers.IntegerField(help_text="Proposals waiting for this member's vote.")


class MemberPublicSerializer(serializers.Serializer):
    display_name = serializers.CharField()
    privacy = serializers.ChoiceField(choices=Profile.Privacy.choices)
    bio = serializers.CharField(required=False, allow_blank=True, help_text="Absent for a private member.")
    interests = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Absent for a private member."
    )


class ProposalOutputSerializer(serializers.Serializer):
    proposal_id = serializers.UUIDField()
    status = NamedChoiceField(enum_name="ProposalStatus", choices=ProposalStatus.choices)
    compatibility = serializers.FloatField()
    members = MemberPublicSerializer(many=True, help_text="The pair.")
    deadline = serializers.DateTimeField(allow_null=True)
    seconds_left = serializers.IntegerField(allow_null=True)
    yes = serializers.IntegerField(allow_null=True, help_text="Staff only; null for voters.")
    no = serializers.IntegerField(allow_null=True, help_text="Staff only; null for voters.")


class NextProposalOutputSerializer(serializers.Serializer):
    proposal = ProposalOutputSerializer(allow_null=True)
    reason = serializers.CharField(required=False, help_text="Why there is nothing to vote on (with null).")


class VoteOutputSerializer(serializers.Serializer):
    proposal_id = serializers.UUIDField()
    choice = serializers.ChoiceField(choices=Vote.Choice.choices)
    status = NamedChoiceField(enum_name="ProposalStatus", choices=ProposalStatus.choices)


class MemberCardSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    display_name = serializers.CharField()
    privacy = serializers.ChoiceField(choices=Profile.Privacy.choices)
    bio = serializers.CharField(
        required=False, allow_blank=True, help_text="Only where the member's privacy lets the viewer see it."
    )
    interests = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Only where the member's privacy lets the viewer see it.",
    )


class EventRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


# An answer given; "not yet" is null.
MATCH_DECISIONS = [(value, label) for value, label in Match.Decision.choices if value]


class FeedItemSerializer(serializers.Serializer):
    match_id = serializers.UUIDField()
    status = NamedChoiceField(enum_name="MatchStatus", choices=MatchStatus.choices)
    compatibility = serializers.FloatField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    seconds_left = serializers.IntegerField(allow_null=True, help_text="Pending matches only.")
    # The metaclass pops declared fields, so this does not shadow Field.source at run time.
    source = serializers.ChoiceField(choices=MatchSource.choices)  # type: ignore[assignment]
    event = EventRefSerializer(allow_null=True)
    with_ = MemberCardSerializer(help_text="The other member.")  # renamed "with" below (a keyword)
    my_decision = NamedChoiceField(enum_name="MatchDecision", choices=MATCH_DECISIONS, allow_null=True)
    their_decision = NamedChoiceField(enum_name="MatchDecision", choices=MATCH_DECISIONS, allow_null=True)
    responded_at = serializers.DateTimeField(allow_null=True, help_text="When the viewer answered.")
    mutual_connections = serializers.IntegerField()
    conversation_id = serializers.UUIDField(allow_null=True)


# The field list is built from _declared_fields; keep the order, under the name the API uses.
FeedItemSerializer._declared_fields = {
    ("with" if name == "with_" else name): field for name, field in FeedItemSerializer._declared_fields.items()
}


class FeedPageSerializer(serializers.Serializer):
    results = FeedItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass it back as cursor; null on the last page.")
    page_size = serializers.IntegerField()
    sort = serializers.ChoiceField(choices=SORTS)


class FollowAllOutputSerializer(serializers.Serializer):
    followed = serializers.IntegerField()
    already_followed = serializers.IntegerField()
    skipped_privacy = serializers.IntegerField()
    network_visible = serializers.BooleanField()


class MutualConnectionsOutputSerializer(serializers.Serializer):
    member = MemberCardSerializer()
    visible = serializers.BooleanField()
    count = serializers.IntegerField()
    results = MemberCardSerializer(many=True)


class ConversationOutputSerializer(serializers.Serializer):
    closed = serializers.BooleanField()
    # "from" is a keyword, so the item is declared inline.
    messages = inline_serializer(
        name="ConversationMessage",
        fields={
            "id": serializers.IntegerField(),
            "from": serializers.CharField(help_text="The sender's display name."),
            "mine": serializers.BooleanField(),
            "body": serializers.CharField(),
            "at": serializers.DateTimeField(),
        },
        many=True,
    )


class MessageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    body = serializers.CharField()
    at = serializers.DateTimeField()


class SystemStatusSerializer(serializers.Serializer):
    healthy = serializers.BooleanField()
    queue_depth = serializers.FloatField(allow_null=True)
    active_voting = serializers.FloatField(allow_null=True)
    stuck_proposals = serializers.FloatField()
    marks = inline_serializer(
        name="ProposalsMarks",
        fields={
            "queue": serializers.ListField(child=serializers.IntegerField(), help_text="[low, high]"),
            "voting": serializers.ListField(child=serializers.IntegerField(), help_text="[low, high]"),
        },
    )
    metrics_recorded_at = serializers.DateTimeField(allow_null=True)
