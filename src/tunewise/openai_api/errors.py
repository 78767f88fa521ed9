"""OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with the matching status.

The official client maps the status to its exception class (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 413 and 422
as APIStatusError subclasses, 429 RateLimitError, 5xx InternalServerError), so the status matters as
much as the body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The `type` OpenAI gives each status family.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorObject


class APIError(Exception):
    """An error a route answers with; servers turn it into an `ErrorResponse` body and `status`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return ErrorResponse(error=ErrorObject(message=self.message, type=self.type, param=self.param,
                                               code=self.code)).model_dump()


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """400: a parameter is missing, malformed or out of range; `param` names it."""
    return APIError(400, message, param=param, code=code)


def unauthorized(message: str = "missing or invalid API key: send 'Authorization: Bearer <key>'") -> APIError:
    return APIError(401, message, code="invalid_api_key")


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """404: an unknown model, file or job (also another team's: its existence is not revealed)."""
    return APIError(404, message, param=param, code=code)


def conflict(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """409: the object is in a state that does not allow the action (e.g. cancelling a finished job)."""
    return APIError(409, message, param=param, code=code)


def too_large(message: str, *, param: str | None = None) -> APIError:
    return APIError(413, message, param=param, code="request_too_large")
