"""The one error shape of the API (SPEC §11): {"error": {"code", "message", "fields"}}."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger("meterline.api")


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(status_code: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status_code)


class ApiError(exceptions.APIException):
    """An error with an explicit status and machine code, raised by views and services' callers."""

    def __init__(self, status_code: int, code: str, message: str, fields: dict | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.fields = fields or {}


class Conflict(ApiError):
    def __init__(self, message: str, code: str = "conflict", fields: dict | None = None) -> None:
        super().__init__(status.HTTP_409_CONFLICT, code, message, fields)


class PayloadTooLarge(ApiError):
    def __init__(self, message: str = "The request body is too large.") -> None:
        super().__init__(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "payload_too_large", message)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """{"usage": {"output_tokens": ["…"]}} → {"usage.output_tokens": ["…"]}; list items get their index."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            flat[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    flat.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()

    response = drf_exception_handler(exc, context)
    if response is None:
        # Unhandled: ApiErrorMiddleware logs it and answers a JSON 500 with the request id.
        return None

    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, str(exc.detail), exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        general = fields.pop("non_field_errors", None)
        message = general[0] if general else "The request has invalid fields."
        if general and fields:
            fields["non_field_errors"] = general
        body = error_body("invalid", message, fields)
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
        if code is None:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else "error"
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = error_body(code, str(message))
    response.data = body
    return response
