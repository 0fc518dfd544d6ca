"""Login brute-force protection (django-axes) glue: the backend and the lockout response.

Axes counts failed logins per (username, IP) in the database (AccessAttempt) and locks
after AXES_FAILURE_LIMIT failures for AXES_COOLOFF_TIME. It watches every login that goes
through `authenticate(request, ...)`: the storefront sign-in, the admin sign-in and the API
token endpoint.
"""

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from common.api import error_body

LOCKED_OUT_CODE = "locked_out"
LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Try again later."


class AxesBackend(AxesStandaloneBackend):
    """Axes' lockout check; without a request (e.g. the test client's `login()`, a
    management command) there is no client to lock out, so it steps aside."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_retry_after_s(request: HttpRequest) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the API gets the error shape, people get the lockout page;
    both 429 with Retry-After."""
    retry_after = lockout_retry_after_s(request)
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(
            error_body(LOCKED_OUT_CODE, LOCKED_OUT_MESSAGE, {"retry_after_s": retry_after}), status=429
        )
    else:
        minutes = max(1, round(retry_after / 60)) if retry_after else None
        response = render(request, "registration/lockout.html", {"retry_after_minutes": minutes}, status=429)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
