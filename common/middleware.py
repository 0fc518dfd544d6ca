"""Request id and HTTP metrics middleware."""

import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from common.metrics import metrics_observe_request

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
