"""The shop's own 404 and 500 pages while DEBUG is on (`make run`).

With DEBUG on, Django answers an unknown URL or a view's Http404 with its technical page
(the URL list) and an exception with the technical 500 page, whatever `handler404` and
`handler500` say. This middleware, installed only when DEBUG and SHOP_ERROR_PAGES_IN_DEBUG
are both true (config/settings/base.py), hands those cases to the same handlers production
uses (common.views.page_not_found / server_error), so development shows what shoppers see.
Exceptions are still logged with their traceback (django.request), like Django does.
Set SHOP_ERROR_PAGES_IN_DEBUG=false to get Django's technical pages back while debugging.
"""

import logging
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

logger = logging.getLogger("django.request")


class ShopErrorPagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # An unknown URL never reaches a view (Resolver404 is turned into the technical page
        # before any middleware's process_exception), so resolve it here first.
        try:
            get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        except Resolver404 as exc:
            return self._not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from common.views import server_error

        if isinstance(exception, Http404):
            return self._not_found(request, exception)
        if _is_handled_by_django(exception):
            return None
        logger.error("Internal Server Error: %s", request.path, exc_info=exception, extra={"status_code": 500})
        return server_error(request)

    @staticmethod
    def _not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
        from common.views import page_not_found

        return page_not_found(request, exception)


def _is_handled_by_django(exception: Exception) -> bool:
    """403, 400 and their kin keep Django's own answers (they are not server errors)."""
    from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
    from django.http.multipartparser import MultiPartParserError

    return isinstance(exception, PermissionDenied | BadRequest | SuspiciousOperation | MultiPartParserError)
