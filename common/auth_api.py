from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError, ErrorCode
from common.security import LOCKED_OUT_CODE, LOCKED_OUT_MESSAGE, lockout_retry_after_s


class TokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


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

    @extend_schema(request=TokenInput, responses=TokenOutput, operation_id="auth_token_create")
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
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
