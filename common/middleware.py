"""Request id, HTTP metrics and dependency-outage middleware."""

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
import structlog
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_structlog import signals as structlog_signals
from django_structlog.app_settings import app_settings as structlog_settings
from django_structlog.middlewares import RequestMiddleware
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.throttling import BaseThrottle

from common.errors import ErrorCode
from common.metrics import metrics_observe_request

_THROTTLE_IDENT = BaseThrottle()
REQUEST_ID_HEADER = "X-Request-ID"
_META_KEY = "HTTP_X_REQUEST_ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Take the request id from `X-Request-ID` (when it is a sane token) or make one, and
    echo it on the response. django-structlog's RequestMiddleware, further down, binds it
    as `request_id` for every log line of the request and every task it enqueues."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get(_META_KEY, "")
        request_id = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        request.META[_META_KEY] = request_id
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's request middleware with one log line per request instead of two:
    it binds request_id, user_id and ip for every line of the request (and the tasks it
    enqueues) as before, but skips the `request_started` line; `request_finished` (or
    `request_failed` for an exception) carries the request line, the status code and the
    user agent. Rendering and masking a JSON line is a measurable share of a request's CPU
    (bench/RESULTS.md)."""

    def prepare(self, request: HttpRequest) -> None:
        request_id = request.META.get(_META_KEY) or uuid.uuid4().hex  # RequestIdMiddleware set it
        structlog.contextvars.bind_contextvars(request_id=request_id)
        self.bind_user_id(request)
        correlation_id = request.META.get("HTTP_X_CORRELATION_ID")
        if correlation_id:
            structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        if structlog_settings.IP_LOGGING_ENABLED:
            self.bind_ip(request)

    @classmethod
    def bind_ip(cls, request: HttpRequest) -> None:
        # The address the throttles key on (REMOTE_ADDR, or the one NUM_PROXIES trusted
        # proxies saw), not django-ipware's guess from every header: the same answer for
        # the log and the limits, and a tenth of the CPU.
        structlog.contextvars.bind_contextvars(ip=_THROTTLE_IDENT.get_ident(request))  # type: ignore[arg-type]  # reads META only


def _finished_with_user_agent(sender: Any, request: HttpRequest, log_kwargs: dict[str, Any], **kwargs: Any) -> None:
    log_kwargs["user_agent"] = request.META.get("HTTP_USER_AGENT")


structlog_signals.bind_extra_request_finished_metadata.connect(
    _finished_with_user_agent, sender=RequestLogMiddleware, dispatch_uid="common.request_log_user_agent"
)


class MetricsMiddleware:
    """Count requests and observe latency by route pattern (bounded cardinality), method
    and status; paths that match no route are counted under route="unmatched"."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        metrics_observe_request(request=request, status=response.status_code, seconds=time.perf_counter() - started)
        return response


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with the policy built once per settings: django-csp rebuilds
    the same header string (and the report-only one) on every response. Whatever asks for
    something of its own (a nonce, a view's csp_exempt/update/replace/config, DEBUG's
    technical 404/500 pages) still goes through django-csp unchanged."""

    _OWN = (
        "_csp_exempt", "_csp_config", "_csp_update", "_csp_replace",
        "_csp_exempt_ro", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro",
    )  # fmt: skip

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self._built: tuple[object, object, dict[str, str]] | None = None

    def _headers(self) -> dict[str, str]:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        if self._built is None or self._built[0] is not policy or self._built[1] is not report_only:
            headers = {HEADER: build_policy(), HEADER_REPORT_ONLY: build_policy(report_only=True)}
            self._built = (policy, report_only, {name: value for name, value in headers.items() if value})
        return self._built[2]

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        if (
            getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in self._OWN)
            or (settings.DEBUG and response.status_code in (404, 500))
        ):
            return super().process_response(request, response)
        for header, value in self._headers().items():
            config = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY" if header == HEADER_REPORT_ONLY
                             else "CONTENT_SECURITY_POLICY", None) or {}  # fmt: skip
            excluded = tuple(config.get("EXCLUDE_URL_PREFIXES", None) or ())
            if header not in response and not request.path_info.startswith(excluded):
                response[header] = value
        # As django-csp: a nonce asked for after the header was written is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response


logger = logging.getLogger(__name__)
OUTAGE_RETRY_AFTER_S = 5


def outage_of(exc: BaseException) -> str | None:
    """The dependency an exception says is unreachable: "database", "redis", or None."""
    if isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DatabaseError) and "connection" in str(exc).lower()
    ):
        return "database"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, BrokerError)):
        return "redis"
    return None


class DependencyOutageMiddleware:
    """A request that needs PostgreSQL or Redis while it is down gets a 503 with
    Retry-After naming what is down (the API's error shape under /api/, a short page
    elsewhere), not a 500 stack. Connections fail fast (DATABASE_CONNECT_TIMEOUT, the Redis
    socket timeouts), so it is never a hang either. Reads that need neither keep working."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        down = outage_of(exception)
        if down is None:
            return None
        logger.warning("%s unreachable during %s %s: %s", down, request.method, request.path, exception)
        return outage_response(request=request, down=down)


def outage_response(*, request: HttpRequest, down: str) -> HttpResponse:
    """503 + Retry-After naming the unreachable dependency (also used by the 500 handler for
    outages met outside a view: sessions, authentication)."""
    message = f"The shop's {down} is unreachable; nothing was changed by this request. Try again shortly."
    response: HttpResponse
    if request.path.startswith("/api/"):
        from common.api import error_body

        response = JsonResponse(error_body(ErrorCode.SERVICE_UNAVAILABLE, message, {"unavailable": down}), status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Temporarily unavailable</title><h1>Temporarily unavailable</h1><p>{message}</p>",
            status=503,
        )
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER_S)
    return response
