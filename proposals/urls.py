from django.urls import path

from proposals.api import (
    ConversationMessagesApi,
    MatchDecideApi,
    MatchesApi,
    MyProfileApi,
    NextProposalApi,
    ProposalDetailApi,
    SystemStatusApi,
    VoteApi,
)

urlpatterns = [
    path("me/profile", MyProfileApi.as_view(), name="my-profile"),
    path("proposals/next", NextProposalApi.as_view(), name="proposal-next"),
    path("proposals/<str:proposal_id>", ProposalDetailApi.as_view(), name="proposal-detail"),
    path("proposals/<str:proposal_id>/vote", VoteApi.as_view(), name="proposal-vote"),
    path("matches", MatchesApi.as_view(), name="matches"),
    path("matches/<str:match_id>/decision", MatchDecideApi.as_view(), name="match-decide"),
    path("conversations/<str:conversation_id>/messages", ConversationMessagesApi.as_view(), name="conversation"),
    path("proposals-status", SystemStatusApi.as_view(), name="proposals-status"),
]
