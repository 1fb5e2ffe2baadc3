"""Staff API of policy health and off-policy evaluation (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path

from discovery.api_health import OpeApi, PolicyHealthApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("staff/discovery/policy-health", PolicyHealthApi.as_view(), name="discovery-policy-health"),
    path("staff/discovery/ope", OpeApi.as_view(), name="discovery-ope"),
]
