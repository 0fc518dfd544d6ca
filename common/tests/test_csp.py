"""common.middleware.CSPMiddleware: the header django-csp would build, built once per
settings; exemptions and per-view policies still go through django-csp."""

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONE, SELF
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from common.middleware import CSPMiddleware

pytestmark = pytest.mark.django_db


def _headers(middleware_class, *, response=None, path="/"):
    response = response or HttpResponse("ok")
    middleware = middleware_class(lambda request: response)
    request = RequestFactory().get(path)
    middleware.process_request(request)
    result = middleware.process_response(request, response)
    return {name: result.get(name) for name in (HEADER, HEADER_REPORT_ONLY)}


def test_the_header_is_django_csps_own(settings):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF], "report-uri": "/csp/"}}
    ours = _headers(CSPMiddleware)

    assert ours == _headers(DjangoCSPMiddleware)
    assert "script-src 'self'" in ours[HEADER]
    assert ours[HEADER_REPORT_ONLY] == "default-src 'self'; report-uri /csp/"


def test_changed_settings_rebuild_it_and_excluded_prefixes_get_none(settings):
    middleware = CSPMiddleware(lambda request: HttpResponse("ok"))
    request = RequestFactory().get("/")
    first = middleware.process_response(request, HttpResponse("ok"))[HEADER]

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": [NONE]}, "EXCLUDE_URL_PREFIXES": ["/api/"]}
    second = middleware.process_response(RequestFactory().get("/"), HttpResponse("ok"))[HEADER]
    excluded = middleware.process_response(RequestFactory().get("/api/v1/"), HttpResponse("ok"))

    assert "script-src 'self'" in first
    assert second == "default-src 'none'"
    assert HEADER not in excluded


def test_an_exempt_or_view_specific_response_goes_through_django_csp():
    exempt = HttpResponse("ok")
    exempt._csp_exempt = True
    replaced = HttpResponse("ok")
    replaced._csp_replace = {"img-src": ["data:"]}

    assert _headers(CSPMiddleware, response=exempt)[HEADER] is None
    assert "img-src data:" in _headers(CSPMiddleware, response=replaced)[HEADER]
