from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.health import health_report


class HealthApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(
        summary="Platform health",
        description="Database, broker, queue depths and every invariant's latest state. "
        "200 when healthy, 503 when the database or broker is down or any invariant is critical.",
        responses={200: dict[str, Any], 503: dict[str, Any]},
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        return Response(report, status=200 if report["status"] != "unhealthy" else 503)
