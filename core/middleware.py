"""Request ids for logs and error bodies, and JSON answers for everything under /api/."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from core.api import error_response
from core.request_id import current_request_id, request_id_var

logger = logging.getLogger("meterline.api")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response


UNREAD_BODY_DRAINED = 16 * 1024 * 1024
_DRAIN_CHUNK = 256 * 1024


class UnreadBodyMiddleware:
    """Reads out what an error answer left unread of the request body (up to UNREAD_BODY_DRAINED bytes) before the
    answer is sent. An error is often decided before the body is read — a body over its limit (413), an unknown
    credential (401), the wrong media type (415) — and a server that closes the connection on unread bytes makes
    the client's kernel see a reset: a client still sending gets a broken pipe instead of the answer (a batch
    over 4 MiB could never learn it must be split). Answers below 400 have read what they need; a longer body
    than the bound is left unread (the client then sees the reset, as from any server that refuses to read it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 400:
            drain_request_body(request)
        return response


def drain_request_body(request: HttpRequest, limit: int = UNREAD_BODY_DRAINED) -> int:
    """Reads and drops what is left of the request body (as bounded by its Content-Length), at most `limit`
    bytes; the number of bytes read. A body the client stopped sending ends the reading quietly."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if not declared.isdigit() or int(declared) > limit or hasattr(request, "_body"):
        return 0  # no length, too long, or already read whole (`request.body`: reading again would replay it)
    drained = 0
    try:
        while chunk := request.read(_DRAIN_CHUNK):
            drained += len(chunk)
    except OSError:  # Django's UnreadablePostError included: the client went away
        pass
    return drained


HOST_REFUSED = "The Host header does not name a host this server answers for."


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def _holds_nul(params: Any) -> bool:
    """Whether a query string's or a form's names or values carry a NUL character, which PostgreSQL text cannot hold."""
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in params.lists())


def _nul_refused(text: str) -> HttpResponse:
    """A portal request refused for a NUL character: a page in the portal's look, as every other refusal."""
    from core.error_views import plain_error

    return plain_error(400, _("Bad request"), text)


class ApiErrorMiddleware:
    """Turns Django's own HTML error pages into the §11 error body for API paths (and, in the portal, the empty
    405 of an action opened as a page into a page that says so).

    DRF views answer their own errors through `core.api.exception_handler`; this catches what
    happens outside them: unknown URLs, CSRF failures, oversized bodies and unhandled exceptions.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _holds_nul(request.GET):
            # PostgreSQL text cannot hold NUL: refuse such parameters before they reach a query.
            if is_api_path(request.path):
                return error_response(400, "invalid", "Query parameters must not contain NUL characters.")
            return _nul_refused(_("The address holds a NUL character, which no page takes. Check the address."))
        if (
            request.method == "POST"
            and not is_api_path(request.path)
            and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
            and _holds_nul(request.POST)
        ):
            # The portal's forms likewise (an API body is parsed, and checked, by its own view).
            return _nul_refused(
                _("A field of the form holds a NUL character, which no field takes. Remove it and send again.")
            )
        response = self.get_response(request)
        if response.status_code < 400:
            return response
        if not is_api_path(request.path):
            if response.status_code == 405 and not response.content and not response.streaming:
                from core.error_views import method_not_allowed

                page = method_not_allowed(request)
                if response.has_header("Allow"):
                    page["Allow"] = response["Allow"]
                return page
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json") or content_type.startswith("application/problem"):
            return response
        return error_for_status(response.status_code)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request.path):
            return None
        return server_error(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """The §11 answer to an unexpected exception on an API path (logged with its traceback)."""
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return error_for_status(500)


_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication credentials were not provided or are invalid."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send JSON with Content-Type: application/json."),
    429: ("rate_limited", "Too many requests."),
}


def error_for_status(status: int) -> HttpResponse:
    """The §11 answer for an HTTP status, with its standard code and message (a 5xx quotes the request id)."""
    if status >= 500:
        return error_response(
            status,
            "server_error",
            f"Something went wrong on our side. Quote request id {current_request_id()} to support.",
        )
    code, message = _MESSAGES.get(status, ("error", "The request failed."))
    return error_response(status, code, message)


class HotPathMiddleware:
    """Answers the gateways' hot endpoints (`METERLINE_HOT_PATHS`: path → handler) for bearer credentials right
    after the request id and security middleware, without the layers those requests never use (static files,
    sessions, locale, CSRF, session authentication, messages, the portal's time zone). A handler returns None to
    send the request the whole way instead (a portal session, a method other than POST). Unexpected errors answer
    the §11 server error, as on every API path; API answers are English, so nothing here depends on the locale.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.handlers = {path: import_string(dotted) for path, dotted in settings.METERLINE_HOT_PATHS.items()}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        handler = self.handlers.get(request.path_info)
        if handler is None or request.method != "POST":
            return self.get_response(request)
        try:
            request.get_host()  # the Host header checked as the common middleware checks it on the whole stack
        except DisallowedHost:
            return error_response(400, "bad_request", HOST_REFUSED)
        try:
            response = handler(request)
        except Exception:  # noqa: BLE001  (every API error is JSON)
            response = server_error(request)
        if response is None:
            return self.get_response(request)
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
