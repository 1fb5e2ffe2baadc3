from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from pydantic import ValidationError
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.config.registry import config_spec, config_specs
from flags.config.selectors import config_current, config_get, config_safe_value, config_versions
from flags.config.services import config_rollback, config_set
from flags.selectors import flag_describe, flag_get, flag_history, flags_all, flags_for_request, switches_all
from flags.services import flag_update, switch_set
from matchplatform.exceptions import InvalidInput, NotFound
from matchplatform.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField
from matchplatform.openapi import error_responses


class FlagsApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="My flags",
        description="Every flag, evaluated for the signed-in member: waffle's rules (everyone, users, groups,"
        " staff, ...) and a sticky percentage (the member's bucket, the same in every request and task).",
        responses={200: {"type": "object", "additionalProperties": {"type": "boolean"}}},
        examples=[OpenApiExample("flags", value={"match_engine_v1": True})],
    )
    def get(self, request: Request) -> Response:
        return Response(flags_for_request(request._request))


# --- staff: flags, switches, config ----------------------------------------------------------

REASON = StrictCharField(
    required=False, allow_blank=True, max_length=100, help_text="Why (kept in the history with who and when)."
)


class StaffFlagSerializer(serializers.Serializer):
    name = serializers.CharField()
    everyone = serializers.BooleanField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    rollout_group = serializers.CharField()
    safe_value = serializers.BooleanField(allow_null=True)
    superusers = serializers.BooleanField()
    staff = serializers.BooleanField()
    authenticated = serializers.BooleanField()
    testing = serializers.BooleanField()
    note = serializers.CharField(allow_blank=True)
    modified = serializers.DateTimeField()


class FlagChangeSerializer(serializers.Serializer):
    everyone = StrictBooleanField(required=False, allow_null=True, help_text="true/false forces it; null: rules")
    percent = StrictFloatField(
        required=False, allow_null=True, min_value=0, max_value=100, help_text="0 to 100 (one decimal place kept)"
    )
    safe_value = StrictBooleanField(required=False, allow_null=True)
    reason = REASON


class HistoryRowSerializer(serializers.Serializer):
    history_id = serializers.IntegerField()
    changed_at = serializers.DateTimeField()
    changed_by = serializers.CharField(allow_null=True)
    change = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    values = serializers.DictField()


class SwitchSerializer(serializers.Serializer):
    name = serializers.CharField()
    active = serializers.BooleanField()
    note = serializers.CharField(allow_blank=True)
    modified = serializers.DateTimeField()


class SwitchChangeSerializer(serializers.Serializer):
    active = StrictBooleanField()
    reason = REASON


class ConfigSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    version = serializers.IntegerField(allow_null=True, help_text="null: never written (the default applies)")
    value = serializers.JSONField(help_text="What config_get answers now (safe mode included)")
    stored = serializers.JSONField(allow_null=True)
    default = serializers.JSONField()
    safe = serializers.JSONField(allow_null=True)
    schema = serializers.JSONField(help_text="The value's JSON Schema")


class ConfigChangeSerializer(serializers.Serializer):
    value = serializers.JSONField(help_text="The new value; validated by the name's schema")
    reason = REASON


class ConfigVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    value = serializers.JSONField()
    changed_at = serializers.DateTimeField()
    changed_by = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    change = serializers.CharField()


class ConfigRollbackSerializer(serializers.Serializer):
    version = StrictIntegerField(min_value=1, max_value=2**31 - 1)
    reason = REASON


FLAG_NAME = OpenApiParameter("flag_name", str, OpenApiParameter.PATH, description="The flag's name")
SWITCH_NAME = OpenApiParameter("switch_name", str, OpenApiParameter.PATH, description="The switch's name")
CONFIG_NAME = OpenApiParameter("config_name", str, OpenApiParameter.PATH, description="The config's name")


def _config_in_force(spec: Any, row: Any) -> Any:
    """The stored value, typed (the default before a write, or if it no longer fits)."""
    if row is None:
        return spec.default
    try:
        return spec.schema.model_validate(row.value)
    except ValidationError:
        return spec.default


def _config_data(name: str) -> dict[str, Any]:
    try:
        spec = config_spec(name)
    except KeyError:
        raise NotFound(f"No config is named {name!r}.") from None
    row = config_current(name)
    return {
        "name": spec.name,
        "description": spec.description,
        "version": row.version if row else None,
        "value": config_get(spec).model_dump(mode="json"),
        "stored": row.value if row else None,
        "default": spec.default.model_dump(mode="json"),
        "safe": (
            config_safe_value(spec, _config_in_force(spec, row)).model_dump(mode="json")
            if spec.safe is not None or spec.safe_update is not None
            else None
        ),
        "schema": spec.schema.model_json_schema(),
    }


class StaffFlagsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Every flag and its rules (staff)",
        responses={200: StaffFlagSerializer(many=True), **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        return Response(StaffFlagSerializer(flags_all(), many=True).data)


class StaffFlagApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A flag and its rules (staff)",
        parameters=[FLAG_NAME],
        responses={200: StaffFlagSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, flag_name: str) -> Response:
        return Response(StaffFlagSerializer(flag_describe(flag_get(flag_name))).data)

    @extend_schema(
        summary="Change a flag: everyone, its sticky percentage, its safe value (staff)",
        description="Only the fields given change. Every change is a history row with who, when and the reason;"
        " every process sees it within about a second.",
        parameters=[FLAG_NAME],
        request=FlagChangeSerializer,
        responses={200: StaffFlagSerializer, **error_responses(400, 403, 404)},
        examples=[OpenApiExample("raise to 25 %", value={"percent": 25, "reason": "stage 2"}, request_only=True)],
    )
    def patch(self, request: Request, flag_name: str) -> Response:
        given = FlagChangeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        reason = data.pop("reason", "")
        flag = flag_update(flag_name, **data, reason=reason, actor=request.user)
        return Response(StaffFlagSerializer(flag_describe(flag)).data)


class StaffFlagHistoryApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A flag's history, newest first (staff)",
        parameters=[FLAG_NAME],
        responses={200: HistoryRowSerializer(many=True), **error_responses(403, 404)},
    )
    def get(self, request: Request, flag_name: str) -> Response:
        flag_get(flag_name)
        return Response(HistoryRowSerializer(flag_history(flag_name), many=True).data)


class StaffSwitchesApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(summary="Every switch (staff)", responses={200: SwitchSerializer(many=True), **error_responses(403)})
    def get(self, request: Request) -> Response:
        return Response(SwitchSerializer(switches_all(), many=True).data)


class StaffSwitchApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Turn a switch on or off (staff), global.safe_mode included",
        parameters=[SWITCH_NAME],
        request=SwitchChangeSerializer,
        responses={200: SwitchSerializer, **error_responses(400, 403)},
        examples=[OpenApiExample("safe mode on", value={"active": True, "reason": "incident 42"}, request_only=True)],
    )
    def put(self, request: Request, switch_name: str) -> Response:
        given = SwitchChangeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        if len(switch_name) > 100:
            raise InvalidInput("A switch's name is at most 100 characters.", fields={"name": ["Too long."]})
        switch = switch_set(
            switch_name,
            given.validated_data["active"],
            reason=given.validated_data.get("reason", ""),
            actor=request.user,
        )
        return Response(SwitchSerializer(switch).data)


class StaffConfigsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Every config name: its value, version, default, safe value and schema (staff)",
        responses={200: ConfigSerializer(many=True), **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        return Response(ConfigSerializer([_config_data(spec.name) for spec in config_specs()], many=True).data)


class StaffConfigApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="A config name (staff)",
        parameters=[CONFIG_NAME],
        responses={200: ConfigSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, config_name: str) -> Response:
        return Response(ConfigSerializer(_config_data(config_name)).data)

    @extend_schema(
        summary="Write a new version of a config value (staff)",
        description="The value is validated by the name's schema: a bad one answers 400 naming each field"
        " (`value.epsilon`). Every write is a new version; see /versions and /rollback.",
        parameters=[CONFIG_NAME],
        request=ConfigChangeSerializer,
        responses={200: ConfigSerializer, **error_responses(400, 403, 404)},
        examples=[
            OpenApiExample(
                "pause fetching",
                value={"value": {"unknown_sites": False}, "reason": "upstream down"},
                request_only=True,
            )
        ],
    )
    def put(self, request: Request, config_name: str) -> Response:
        given = ConfigChangeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        config_set(
            config_name,
            given.validated_data["value"],
            reason=given.validated_data.get("reason", ""),
            actor=request.user,
        )
        return Response(ConfigSerializer(_config_data(config_name)).data)


class StaffConfigVersionsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Every version of a config value, newest first (staff)",
        parameters=[CONFIG_NAME],
        responses={200: ConfigVersionSerializer(many=True), **error_responses(403, 404)},
    )
    def get(self, request: Request, config_name: str) -> Response:
        _config_data(config_name)
        return Response(ConfigVersionSerializer(config_versions(config_name), many=True).data)


class StaffConfigRollbackApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Restore an earlier version of a config value, as a new version (staff)",
        parameters=[CONFIG_NAME],
        request=ConfigRollbackSerializer,
        responses={200: ConfigSerializer, **error_responses(400, 403, 404)},
    )
    def post(self, request: Request, config_name: str) -> Response:
        given = ConfigRollbackSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        _config_data(config_name)
        config_rollback(
            config_name,
            version=given.validated_data["version"],
            reason=given.validated_data.get("reason", ""),
            actor=request.user,
        )
        return Response(ConfigSerializer(_config_data(config_name)).data)
