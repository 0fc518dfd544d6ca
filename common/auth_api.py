from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError, ErrorCode


class TokenInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


class TokenApi(APIView):
    """Exchange a username and password for an API token (`Authorization: Token <key>`)."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(request=TokenInput, responses=TokenOutput, operation_id="auth_token_create")
    def post(self, request: Request) -> Response:
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request._request, **data.validated_data)
        if user is None or not user.is_active:
            raise ApplicationError(
                "Unable to sign in with these credentials.", code=ErrorCode.NOT_AUTHENTICATED, status_code=401
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
