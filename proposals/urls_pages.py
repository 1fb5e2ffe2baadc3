"""The member pages, mounted at the site root: ``path("", include("proposals.urls_pages"))``."""

from django.urls import path

from proposals import views

app_name = "members"

urlpatterns = [
    path("signin", views.signin, name="signin"),
    path("signout", views.signout, name="signout"),
    path("vote", views.vote, name="vote"),
    path("matches", views.matches, name="matches"),
    path("conversations/<str:conversation_id>", views.conversation, name="conversation"),
]
