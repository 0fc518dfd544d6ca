from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from knox.models import AuthToken
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError, ErrorCode
from common.openapi import api_errors
from common.security import LOCKED_OUT_CODE, LOCKED_OUT_MESSAGE, lockout_retry_after_s
from common.serializers import Serializer


class TokenInput(Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOutput(Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown once; stored hashed.")
    expiry = serializers.DateTimeField(help_text="When the token stops working (API_TOKEN_TTL after sign-in).")


class TokenApi(APIView):
    """Exchange a username and password for an API token (`Authorization: Token <key>`).

    Throttled per username tried and per IP (scope "login"); django-axes sees every attempt
    (authenticate gets the request) and locks a (username, IP) pair after
    AXES_FAILURE_LIMIT failures: 429 `locked_out` with Retry-After until the cool-off ends."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_scope = "login"

    @staticmethod
    def throttle_client(request: Request) -> str:
        username = request.data.get("username", "") if isinstance(request.data, dict) else ""
        return f"username:{str(username).strip().lower()}"

    @extend_schema(
        request=TokenInput,
        responses={200: TokenOutput, **api_errors({401: ("not_authenticated",), 429: ("throttled", LOCKED_OUT_CODE)})},
        operation_id="auth_token_create",
        auth=[],  # anonymous: generated clients must not ask for a token to get one
        summary="Sign in for an API token",
        description="Exchange a username and password for an API token; send it as `Authorization: Token <key>`. "
        "401 `not_authenticated` for wrong credentials; 429 `throttled` or `locked_out` (with Retry-After) "
        "after too many attempts.",
        examples=[
            OpenApiExample("Shopper", value={"username": "shopper", "password": "shopper-pass"}, request_only=True)
        ],
    )
    def post(self, request: Request) -> Response:
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request._request, **data.validated_data)
        if getattr(request._request, "axes_locked_out", False):
            raise ApplicationError(
                LOCKED_OUT_MESSAGE,
                code=LOCKED_OUT_CODE,
                details={"retry_after_s": lockout_retry_after_s(request._request)},
                status_code=429,
            )
        if user is None or not user.is_active:
            raise ApplicationError(
                "Unable to sign in with these credentials.", code=ErrorCode.NOT_AUTHENTICATED, status_code=401
            )
        AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
        instance, key = AuthToken.objects.create(user=user)
        return Response(TokenOutput({"token": key, "expiry": instance.expiry}).data)


class LogoutApi(APIView):
    @extend_schema(
        request=None,
        responses={204: None},
        operation_id="auth_logout",
        summary="Revoke this token",
        description="Revoke the token this request is signed with; it answers 401 from now on.",
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, AuthToken):
            request.auth.delete()
        return Response(status=204)


class LogoutAllApi(APIView):
    @extend_schema(
        request=None,
        responses={204: None},
        operation_id="auth_logout_all",
        summary="Revoke every token of the user",
        description="Revoke every API token of the signed-in user (every device); each answers 401 from now on.",
    )
    def post(self, request: Request) -> Response:
        AuthToken.objects.filter(user_id=request.user.pk).delete()
        return Response(status=204)
