"""Discovery's pages: the member's (pick interests, see suggestions) and the operators'."""

from django.urls import include, path

urlpatterns = [
    path("", include("discovery.pages_member")),
    path("", include("discovery.pages_ops")),
]
