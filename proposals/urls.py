from django.urls import path

from proposals.api import (
    ConversationMessagesApi,
    MatchAnswerApi,
    MatchDetailApi,
    MatchFeedApi,
    MatchFollowAllApi,
    MutualConnectionsApi,
    MyProfileApi,
    NextProposalApi,
    ProposalDetailApi,
    SystemStatusApi,
    VoteApi,
)
from proposals.api_metrics import MatchMetricsApi

urlpatterns = [
    path("me/profile", MyProfileApi.as_view(), name="my-profile"),
    path("proposals/next", NextProposalApi.as_view(), name="proposal-next"),
    path("proposals/<str:proposal_id>", ProposalDetailApi.as_view(), name="proposal-detail"),
    path("proposals/<str:proposal_id>/vote", VoteApi.as_view(), name="proposal-vote"),
    path("matches/", MatchFeedApi.as_view(), name="matches"),
    path("matches/mutual-connections", MutualConnectionsApi.as_view(), name="mutual-connections"),
    path("matches/metrics", MatchMetricsApi.as_view(), name="match-metrics"),
    path("matches/<str:match_id>/", MatchDetailApi.as_view(), name="match-detail"),
    path("matches/<str:match_id>/accept", MatchAnswerApi.as_view(decision="accept"), name="match-accept"),
    path("matches/<str:match_id>/reject", MatchAnswerApi.as_view(decision="reject"), name="match-reject"),
    path("matches/<str:match_id>/follow-all", MatchFollowAllApi.as_view(), name="match-follow-all"),
    path("conversations/<str:conversation_id>/messages", ConversationMessagesApi.as_view(), name="conversation"),
    path("proposals-status", SystemStatusApi.as_view(), name="proposals-status"),
]
