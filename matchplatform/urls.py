from typing import Any

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ops.prometheus import metrics_view
from proposals.views_ops import ops_matches
from runs.views import home


class FaviconRedirect(RedirectView):
    """Browsers ask for /favicon.ico whatever the page links; answer with the site's icon."""

    permanent = False

    def get_redirect_url(self, *args: Any, **kwargs: Any) -> str:
        return static("favicon.svg")


urlpatterns = [
    # First: the member discovery API (suggestions above all) is the busiest route, and Django
    # walks every pattern listed before the one that matches, on every request.
    path("api/", include("discovery.urls_member")),
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("", home, name="home"),
    path("", include("proposals.urls_pages")),
    path("admin/", admin.site.urls),
    path("ops/matches", ops_matches, name="ops-matches"),
    path("", include("ops.pages_urls")),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("ops.urls")),
    path("api/", include("flags.urls")),
    path("api/match/", include("runs.urls")),
    path("api/auth/", include("proposals.urls_auth")),
    path("api/", include("proposals.urls")),
    path("api/", include("discovery.urls")),
    path("", include("discovery.pages_urls")),
]
