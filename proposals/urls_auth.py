from django.urls import path

from proposals.api_auth import AuthLoginApi, AuthLogoutApi, AuthMeApi, AuthNonceApi, AuthSiweApi, AuthTokenApi

urlpatterns = [
    path("nonce", AuthNonceApi.as_view(), name="auth-nonce"),
    path("siwe", AuthSiweApi.as_view(), name="auth-siwe"),
    path("login", AuthLoginApi.as_view(), name="auth-login"),
    path("logout", AuthLogoutApi.as_view(), name="auth-logout"),
    path("token", AuthTokenApi.as_view(), name="auth-token"),
    path("me", AuthMeApi.as_view(), name="auth-me"),
]
