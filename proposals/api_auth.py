"""Member authentication API: Sign-In with Ethereum, password login, logout, who am I.

Session authentication only: DRF then enforces CSRF for every signed-in session, while an
anonymous client can still ask for a nonce and sign in. Basic authentication is left out on
purpose: a browser replays cached Basic credentials cross-site, without a CSRF check.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from matchplatform.exceptions import Forbidden
from proposals.siwe import MESSAGE_MAX_CHARS, member_summary, wallet_nonce_issue, wallet_sign_in

# The backend that keeps the session valid on later requests; named so that login() works
# for a wallet member (who never went through authenticate()) even with several backends.
_SESSION_BACKEND = "matchplatform.auth.ModelBackend"


class AuthThrottle(SimpleRateThrottle):
    """Per-client limit on the sign-in endpoints; the rate is read from settings at call time."""

    scope = "auth"

    def get_rate(self) -> str | None:
        return getattr(settings, "AUTH_RATE", "30/min") or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    # The metaclass pops declared fields, so this does not shadow Serializer.fields at run time.
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


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


_ERRORS_400 = OpenApiResponse(ErrorSerializer, description="Malformed input.")
_ERRORS_403 = OpenApiResponse(ErrorSerializer, description="Refused.")
_ERRORS_429 = OpenApiResponse(ErrorSerializer, description="Too many attempts from this client.")


def _member_data(user: User) -> dict[str, Any]:
    return dict(MemberOutputSerializer(member_summary(user=user)).data)


class AuthNonceApi(APIView):
    authentication_classes = [SessionAuthentication]
    throttle_classes = [AuthThrottle]

    @extend_schema(
        summary="Issue a Sign-In with Ethereum nonce",
        request=None,
        responses={201: NonceOutputSerializer, 429: _ERRORS_429},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        nonce = wallet_nonce_issue()
        return Response(NonceOutputSerializer(nonce).data, status=201)


class AuthSiweApi(APIView):
    authentication_classes = [SessionAuthentication]
    throttle_classes = [AuthThrottle]

    @extend_schema(
        summary="Sign in with Ethereum (EIP-4361)",
        description=(
            "Verifies the signed message (domain, times, signature, single-use nonce) and starts a "
            "session. A member who is already signed in links the wallet to their account instead."
        ),
        request=SiweInputSerializer,
        responses={
            200: MemberOutputSerializer,
            400: _ERRORS_400,
            403: _ERRORS_403,
            409: OpenApiResponse(ErrorSerializer, description="The wallet belongs to another member."),
            429: _ERRORS_429,
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
        signed_in = request.user if request.user.is_authenticated else None
        user = wallet_sign_in(
            message=body.validated_data["message"],
            signature=body.validated_data["signature"],
            domain=request.get_host(),
            user=signed_in,  # type: ignore[arg-type]
        )
        login(request._request, user, backend=_SESSION_BACKEND)
        return Response(_member_data(user))


class AuthLoginApi(APIView):
    authentication_classes = [SessionAuthentication]
    throttle_classes = [AuthThrottle]

    @extend_schema(
        summary="Sign in with a username and password",
        request=LoginInputSerializer,
        responses={200: MemberOutputSerializer, 400: _ERRORS_400, 403: _ERRORS_403, 429: _ERRORS_429},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        body = LoginInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None:
            raise Forbidden("The username or password is wrong.", code="bad_credentials")
        login(request._request, user)
        return Response(_member_data(user))  # type: ignore[arg-type]


class AuthLogoutApi(APIView):
    authentication_classes = [SessionAuthentication]

    @extend_schema(summary="End the session", request=None, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=204)


class AuthMeApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="The signed-in member",
        responses={200: MemberOutputSerializer, 403: _ERRORS_403},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response(_member_data(request.user))  # type: ignore[arg-type]
