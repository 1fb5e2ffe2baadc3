from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from proposals.views_ops import ops_matches
from runs.views import home

urlpatterns = [
    path("", home, name="home"),
    path("", include("proposals.urls_pages")),
    path("admin/", admin.site.urls),
    path("ops/matches", ops_matches, name="ops-matches"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("ops.urls")),
    path("api/match/", include("runs.urls")),
    path("api/auth/", include("proposals.urls_auth")),
    path("api/", include("proposals.urls")),
]
