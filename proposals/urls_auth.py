from django.urls import path

from proposals.api_auth import AuthLoginApi, AuthLogoutApi, AuthMeApi, AuthNonceApi, AuthSiweApi

urlpatterns = [
    path("nonce", AuthNonceApi.as_view(), name="auth-nonce"),
    path("siwe", AuthSiweApi.as_view(), name="auth-siwe"),
    path("login", AuthLoginApi.as_view(), name="auth-login"),
    path("logout", AuthLogoutApi.as_view(), name="auth-logout"),
    path("me", AuthMeApi.as_view(), name="auth-me"),
]
