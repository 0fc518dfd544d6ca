"""One error shape everywhere: {"error": {"code", "message", "details"}} with the right status."""

import pytest
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404
from rest_framework import exceptions

from common.api import exception_handler
from common.errors import ApplicationError, Conflict, IllegalTransition, NotFound, ValidationFailed
from inventory.services import InsufficientStock


def _render(exc: Exception) -> tuple[int, dict]:
    response = exception_handler(exc, {})
    assert response is not None
    return response.status_code, response.data


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (ValidationFailed("Bad.", details={"f": ["x"]}), 400,
         {"error": {"code": "validation_error", "message": "Bad.", "details": {"f": ["x"]}}}),
        (NotFound("Gone."), 404, {"error": {"code": "not_found", "message": "Gone.", "details": {}}}),
        (Conflict("Busy."), 409, {"error": {"code": "conflict", "message": "Busy.", "details": {}}}),
        (IllegalTransition("No.", details={"from": "paid", "to": "cancelled"}), 409,
         {"error": {"code": "illegal_transition", "message": "No.", "details": {"from": "paid", "to": "cancelled"}}}),
        (InsufficientStock("Short.", details={"skus": ["A"]}), 409,
         {"error": {"code": "insufficient_stock", "message": "Short.", "details": {"skus": ["A"]}}}),
        (ApplicationError("Teapot.", code="teapot", status_code=418), 418,
         {"error": {"code": "teapot", "message": "Teapot.", "details": {}}}),
        (Http404("secret internals"), 404, {"error": {"code": "not_found", "message": "Not found.", "details": {}}}),
        (ObjectDoesNotExist(), 404, {"error": {"code": "not_found", "message": "Not found.", "details": {}}}),
        (PermissionDenied(), 403, {"error": {"code": "permission_denied",
                                             "message": "You do not have permission to perform this action.",
                                             "details": {}}}),
        (exceptions.NotAuthenticated(), 401, {"error": {"code": "not_authenticated",
                                                         "message": "Authentication credentials were not provided.",
                                                         "details": {}}}),
        (exceptions.ParseError(), 400, {"error": {"code": "parse_error", "message": "Malformed request.",
                                                   "details": {}}}),
        (exceptions.MethodNotAllowed("PUT"), 405, {"error": {"code": "method_not_allowed",
                                                              "message": 'Method "PUT" not allowed.', "details": {}}}),
        (exceptions.UnsupportedMediaType("text/plain"), 415,
         {"error": {"code": "unsupported_media_type", "message": 'Unsupported media type "text/plain" in request.',
                    "details": {}}}),
        (exceptions.NotAcceptable(), 406, {"error": {"code": "not_acceptable",
                                                      "message": "Could not satisfy the request Accept header.",
                                                      "details": {}}}),
        (exceptions.Throttled(wait=12.4), 429,
         {"error": {"code": "throttled", "message": "Request was throttled. Expected available in 13 seconds.",
                    "details": {"retry_after_s": 13}}}),  # rounded up, like Retry-After
        (exceptions.ValidationError({"quantity": ["Too big."]}), 400,
         {"error": {"code": "validation_error", "message": "The request is not valid; see details.",
                    "details": {"quantity": ["Too big."]}}}),
        (exceptions.ValidationError(["Expected an object."]), 400,
         {"error": {"code": "validation_error", "message": "The request is not valid; see details.",
                    "details": {"non_field_errors": ["Expected an object."]}}}),
    ],
)  # fmt: skip
def test_every_error_renders_in_the_one_shape(exc, status, body):
    assert _render(exc) == (status, body)


def test_an_unexpected_exception_is_left_to_djangos_500_handling():
    assert exception_handler(ValueError("bug"), {}) is None


def test_no_error_code_falls_back_to_server_error_for_drfs_own_exceptions():
    # Every APIException DRF raises by itself has a code of its own (a regression guard for
    # the 415 that rendered as "server_error").
    drf_raised = [
        exceptions.ParseError(), exceptions.AuthenticationFailed(), exceptions.NotAuthenticated(),
        exceptions.PermissionDenied(), exceptions.NotFound(), exceptions.MethodNotAllowed("GET"),
        exceptions.NotAcceptable(), exceptions.UnsupportedMediaType("x/y"), exceptions.Throttled(),
        exceptions.ValidationError("x"),
    ]  # fmt: skip

    codes = {_render(exc)[1]["error"]["code"] for exc in drf_raised}

    assert "server_error" not in codes


@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


@pytest.mark.django_db
def test_unknown_page_is_an_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_wrong_method_is_405_in_the_error_shape(api_client):
    response = api_client.delete("/api/v1/products/")

    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": 'Method "DELETE" not allowed.', "details": {}}
    }
