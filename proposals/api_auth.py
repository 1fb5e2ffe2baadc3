"""Member authentication API: Sign-In with Ethereum, password login, logout, API tokens, who
am I.

Browsers sign in to a session (DRF enforces CSRF on every write a signed-in session makes);
programs exchange a username and password for an API token and send it as
``Authorization: Token <key>``. There is no Basic authentication: a browser replays cached Basic
credentials cross-site without a CSRF check, and it lets anyone try passwords on any endpoint.
Every failed sign-in (a wrong password, a refused signed message, a wrong token) counts towards
a lockout of the account from that client and of the client (django-axes, 429 with Retry-After).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matchplatform.authentication import authentication_failure_record, client_locked_out
from matchplatform.exceptions import ErrorCode, Forbidden, LockedOut
from matchplatform.openapi import error_responses
from matchplatform.throttling import SettingRateThrottle
from proposals.identity.selectors import member_summary
from proposals.identity.services import api_token_issue, api_token_revoke, wallet_nonce_issue, wallet_sign_in
from proposals.identity.siwe import MESSAGE_MAX_CHARS

# The backend that keeps the session valid on later requests; named so that login() works
# for a wallet member (who never went through authenticate()) even with several backends.
_SESSION_BACKEND = "matchplatform.auth.ModelBackend"


class NonceOutputSerializer(serializers.Serializer):
    nonce = serializers.CharField(help_text="Put this in the message's 'Nonce:' line; single use.")
    expires_at = serializers.DateTimeField()


class SiweInputSerializer(serializers.Serializer):
    # Never trimmed: the signature covers the exact text.
    message = serializers.CharField(
        max_length=MESSAGE_MAX_CHARS, trim_whitespace=False, help_text="The EIP-4361 message, exactly as signed."
    )
    signature = serializers.CharField(
        max_length=200, trim_whitespace=False, help_text="The personal_sign signature, 0x and 130 hex digits."
    )


class LoginInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class MemberOutputSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    wallet_address = serializers.CharField(allow_null=True, help_text="EIP-55 checksummed; null if none is linked.")
    display_name = serializers.CharField()


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as 'Authorization: Token <token>'.")
    user_id = serializers.IntegerField()
    username = serializers.CharField()


def _member_data(user: User) -> dict[str, Any]:
    return dict(MemberOutputSerializer(member_summary(user=user)).data)


def _password_check(request: Request, body: LoginInputSerializer) -> User:
    """The member these credentials sign in, or the refusal: 403 for wrong ones, 429 once the
    account or the client is locked out (axes counts each failure in ``authenticate``)."""
    user = authenticate(
        request._request,
        username=body.validated_data["username"],
        password=body.validated_data["password"],
    )
    if user is None:
        if getattr(request._request, "axes_locked_out", False):
            raise LockedOut()
        raise Forbidden("The username or password is wrong.", code=ErrorCode.BAD_CREDENTIALS)
    return user  # type: ignore[return-value]


_SIGN_IN_ERRORS = error_responses(
    400, 403, 415, 429, d403="Wrong credentials.", d429="Too many attempts, or locked out; see Retry-After."
)


class AuthNonceApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Issue a Sign-In with Ethereum nonce",
        request=None,
        responses={201: NonceOutputSerializer, **error_responses()},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        nonce = wallet_nonce_issue()
        return Response(NonceOutputSerializer(nonce).data, status=201)


class AuthSiweApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Sign in with Ethereum (EIP-4361)",
        description=(
            "Verifies the signed message (domain, times, signature, single-use nonce) and starts a "
            "session. A member who is already signed in links the wallet to their account instead. "
            "Each refused message counts as a failed sign-in from this client."
        ),
        request=SiweInputSerializer,
        responses={
            200: MemberOutputSerializer,
            **error_responses(400, 403, 409, 415, d409="The wallet belongs to another member."),
        },
        examples=[
            OpenApiExample(
                "sign in",
                request_only=True,
                value={
                    "message": (
                        "example.com wants you to sign in with your Ethereum account:\n"
                        "0x...\n\nSign in to matchplatform.\n\n"
                        "URI: https://example.com\nVersion: 1\nChain ID: 1\nNonce: ...\n"
                        "Issued At: 2025-01-01T00:00:00Z"
                    ),
                    "signature": "0x...",
                },
            )
        ],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        body = SiweInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if client_locked_out(request=request._request):
            raise LockedOut()
        signed_in = request.user if request.user.is_authenticated else None
        try:
            user = wallet_sign_in(
                message=body.validated_data["message"],
                signature=body.validated_data["signature"],
                domain=request.get_host(),
                user=signed_in,  # type: ignore[arg-type]
            )
        except Forbidden:
            if authentication_failure_record(request=request._request):
                raise LockedOut() from None
            raise
        if request.auth is None:
            # A session (or none): the wallet's member is signed in to it. A token caller who
            # linked a wallet keeps using the token and gets no session.
            login(request._request, user, backend=_SESSION_BACKEND)
        return Response(_member_data(user))


class AuthLoginApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Sign in with a username and password (starts a session)",
        request=LoginInputSerializer,
        responses={200: MemberOutputSerializer, **_SIGN_IN_ERRORS},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        body = LoginInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = _password_check(request, body)
        login(request._request, user)
        return Response(_member_data(user))


class AuthLogoutApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="End the session",
        description="An API token stays valid: DELETE /api/auth/token revokes it.",
        request=None,
        responses={204: None, **error_responses(403)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=204)


class _TokenPermission(BasePermission):
    """Anyone may exchange credentials for a token; only its holder may revoke it."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method != "DELETE" or bool(request.user and request.user.is_authenticated)


class AuthTokenApi(APIView):
    permission_classes = [_TokenPermission]
    throttle_classes = [SettingRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Get an API token for a username and password",
        description=(
            "Answers the member's token (201 when it was created now, 200 when they had one): send "
            "it as 'Authorization: Token <token>'. The same token until it is revoked."
        ),
        request=LoginInputSerializer,
        responses={201: TokenOutputSerializer, 200: TokenOutputSerializer, **_SIGN_IN_ERRORS},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        body = LoginInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = _password_check(request, body)
        token, created = api_token_issue(user=user)
        data = TokenOutputSerializer({"token": token.key, "user_id": user.pk, "username": user.get_username()}).data
        return Response(data, status=201 if created else 200)

    @extend_schema(
        summary="Revoke the signed-in member's API token",
        request=None,
        responses={204: OpenApiResponse(description="Revoked (or there was none)."), **error_responses(403)},
        tags=["auth"],
    )
    def delete(self, request: Request) -> Response:
        api_token_revoke(user=request.user)  # type: ignore[arg-type]
        return Response(status=204)


class AuthMeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The signed-in member",
        responses={200: MemberOutputSerializer, **error_responses(403)},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response(_member_data(request.user))  # type: ignore[arg-type]
