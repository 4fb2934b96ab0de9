"""The error views Django calls for exceptions raised outside any view (a middleware refusing a request): §11
JSON under /api/, Django's own pages elsewhere. An unknown or malformed Host header is the common case — the
common middleware refuses it before any view runs."""

from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from core.api import error_response
from core.middleware import HOST_REFUSED, error_for_status, is_api_path


def bad_request(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return defaults.bad_request(request, exception, **kwargs)
    if isinstance(exception, DisallowedHost):
        return error_response(400, "bad_request", HOST_REFUSED)
    return error_for_status(400)


def permission_denied(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return defaults.permission_denied(request, exception, **kwargs)
    return error_for_status(403)


def page_not_found(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return defaults.page_not_found(request, exception, **kwargs)
    return error_for_status(404)


def server_error(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return defaults.server_error(request, **kwargs)
    return error_for_status(500)
