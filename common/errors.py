"""The one error family. Every domain error is an ApplicationError with a stable code;
common.api.exception_handler renders it as {"error": {"code", "message", "details"}}."""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    PARSE_ERROR = "parse_error"
    NOT_AUTHENTICATED = "not_authenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    ILLEGAL_TRANSITION = "illegal_transition"
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    SERVER_ERROR = "server_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


class ApplicationError(Exception):
    """A refused request or a domain rule violation; nothing was changed."""

    status_code = 400
    code: str = ErrorCode.VALIDATION_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or {}


class ValidationFailed(ApplicationError):
    status_code = 400
    code: str = ErrorCode.VALIDATION_ERROR


class NotFound(ApplicationError):
    status_code = 404
    code: str = ErrorCode.NOT_FOUND


class Conflict(ApplicationError):
    status_code = 409
    code: str = ErrorCode.CONFLICT


class IllegalTransition(Conflict):
    code: str = ErrorCode.ILLEGAL_TRANSITION
