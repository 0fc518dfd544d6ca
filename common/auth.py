"""Authentication: the session backend, and API tokens (django-rest-knox: hashed, expiring,
revocable tokens) sent as `Authorization: Token <key>`."""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.models import AuthToken

from common.db import RowLookup

_user_by_pk = RowLookup(User)


class UserBackend(ModelBackend):
    """Django's ModelBackend (usernames and passwords, permissions), whose session lookup of
    the signed-in user on every request is compiled once (common.db.RowLookup): the same row,
    a third of the CPU. Django still verifies the session against the password hash."""

    def get_user(self, user_id: Any) -> User | None:
        try:
            pk = User._meta.pk.to_python(user_id)
        except ValidationError:  # a malformed id in a session: nobody
            return None
        user = _user_by_pk(pk)
        return user if user is not None and self.user_can_authenticate(user) else None


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox's authentication, without its scan of every other token of the user on each request
    (one query per request, on every hot path): an expired token is refused and deleted when
    used; the user's other expired tokens are purged at sign-in (common/auth_api.py)."""

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """How the schema documents it: `Authorization: Token <key>`."""

    target_class = "common.auth.ExpiringTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'API token from POST /api/v1/auth/token/, sent as "Token <key>"; expires after '
            "API_TOKEN_TTL, revoked by /api/v1/auth/logout/ and /logout-all/.",
        }
