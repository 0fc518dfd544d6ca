"""The published schema tells the truth about errors.

Every operation lists the error answers it can give, each with the one error shape
`{"error": {"code", "message", "details"}}` and the codes it may carry. Views declare their
domain errors with `api_errors(...)`; `ApiAutoSchema` adds the ones implied by how the view is
built (authentication -> 401, a permission beyond sign-in or a session-authenticated write
-> 403, path parameters or pages -> 404, a throttle scope -> 429 with Retry-After, an
Idempotency-Key -> 400/409/422, a body or query parameters -> 400)."""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from common.errors import ErrorCode
from common.serializers import Serializer

IDEMPOTENCY_KEY = "Idempotency-Key"


class ErrorBody(Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="A sentence for people.")
    details = serializers.DictField(
        child=serializers.JSONField(), help_text="Per-field messages or facts about the error; `{}` when none."
    )


class ErrorOutput(Serializer):
    error = ErrorBody()


_DEFAULT_MESSAGES = {
    400: "The request is not valid; see details.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    409: "The request conflicts with the current state.",
    422: "This Idempotency-Key was used with a different request.",
    429: "Request was throttled. Expected available in 3 seconds.",
}


def error_response(status: int, codes: tuple[str, ...] | list[str]) -> OpenApiResponse:
    """An error answer with the error shape, the codes it may carry and one example per code."""
    unique = list(dict.fromkeys(str(code) for code in codes))
    return OpenApiResponse(
        response=ErrorOutput,
        description="Error, code one of: " + ", ".join(f"`{code}`" for code in unique) + ".",
        examples=[
            OpenApiExample(
                f"{code} ({status})",
                value={"error": {"code": code, "message": _DEFAULT_MESSAGES.get(status, code), "details": {}}},
                status_codes=[str(status)],
                response_only=True,
            )
            for code in unique
        ],
    )


def api_errors(errors: dict[int, tuple[str, ...]]) -> dict[int, OpenApiResponse]:
    """Domain errors of one operation, for `extend_schema(responses={200: X, **api_errors({...})})`.

    The implied errors (401, 403, 404, 429, idempotency, validation) are merged in by
    ApiAutoSchema, so a view lists only what is its own."""
    return {status: error_response(status, codes) for status, codes in errors.items()}


def idempotency_key_header(description: str) -> OpenApiParameter:
    return OpenApiParameter(
        IDEMPOTENCY_KEY,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=True,
        description=description + " 1 to 255 printable ASCII characters.",
    )


_RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."},
}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error answers implied by the view."""

    def _codes_from_description(self, response: dict[str, Any]) -> list[str]:
        description = str(response.get("description", ""))
        return [part.strip("` .") for part in description.partition(":")[2].split(",") if part.strip("` .")]

    def _implied_errors(self) -> dict[int, list[str]]:
        view, method = self.view, self.method.upper()
        implied: dict[int, list[str]] = {}
        writes = method in {"POST", "PUT", "PATCH", "DELETE"}
        parameters = [p for p in self.get_override_parameters() if isinstance(p, OpenApiParameter)]
        idempotent = any(p.name == IDEMPOTENCY_KEY for p in parameters)
        has_body = method in {"POST", "PUT", "PATCH"} and self.get_request_serializer() is not None
        is_list = method == "GET" and self._is_list_view() and self._get_paginator() is not None
        if has_body or writes:
            implied.setdefault(400, []).extend([ErrorCode.VALIDATION_ERROR, ErrorCode.PARSE_ERROR])
        if is_list:
            implied.setdefault(400, []).append(ErrorCode.VALIDATION_ERROR)
        if idempotent:
            implied.setdefault(400, []).extend([ErrorCode.IDEMPOTENCY_KEY_MISSING, ErrorCode.IDEMPOTENCY_KEY_INVALID])
            implied.setdefault(409, []).append(ErrorCode.IDEMPOTENCY_IN_PROGRESS)
            implied.setdefault(422, []).append(ErrorCode.IDEMPOTENCY_MISMATCH)
        authenticators = list(getattr(view, "authentication_classes", []))
        if authenticators:
            implied.setdefault(401, []).append(ErrorCode.NOT_AUTHENTICATED)
        permissions = list(getattr(view, "permission_classes", []))
        beyond_sign_in = any(p not in (AllowAny, IsAuthenticated) for p in permissions)
        csrf = writes and any(issubclass(a, SessionAuthentication) for a in authenticators)
        if beyond_sign_in or csrf:
            implied.setdefault(403, []).append(ErrorCode.PERMISSION_DENIED)
        if "{" in self.path or is_list:
            implied.setdefault(404, []).append(ErrorCode.NOT_FOUND)
        if getattr(view, "throttle_scope", None):
            implied.setdefault(429, []).append(ErrorCode.THROTTLED)
        return implied

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for status, codes in self._implied_errors().items():
            key = str(status)
            if key in responses:
                declared = self._codes_from_description(responses[key])
                if str(responses[key].get("description", "")).startswith("Error, code") and declared:
                    merged = error_response(status, [*declared, *codes])
                    responses[key] = self._get_response_for_code(merged, key, direction=direction)
                continue
            responses[key] = self._get_response_for_code(error_response(status, codes), key, direction=direction)
        if "429" in responses:
            responses["429"].setdefault("headers", {}).update(_RETRY_AFTER)
        return dict(sorted(responses.items()))
