from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.selectors import flags_for_request


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
