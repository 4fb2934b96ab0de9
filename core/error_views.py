"""Error pages. Django calls these views for exceptions no view answered (a 404 from a look-up, a
PermissionDenied, a middleware refusing a request — an unknown or malformed Host header is the common case —
or an unexpected error): §11 JSON under /api/, a page of the portal elsewhere, in the reader's language."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from core.api import error_response
from core.middleware import HOST_REFUSED, error_for_status, is_api_path
from core.request_id import current_request_id


def portal_error(request: HttpRequest, status: int, title: str, text: str, *, back: bool = False) -> HttpResponse:
    """An error page in the portal's layout, with its menu (for a request that got as far as the views)."""
    back_url = _back_url(request) if back else ""
    context = {"error_status": status, "error_title": title, "error_text": text, "back_url": back_url}
    return render(request, "error.html", context, status=status)


def plain_error(status: int, title: str, text: str) -> HttpResponse:
    """An error page that needs nothing of the request: for a request refused before the views, or a failure that
    may lie in what the portal's menu reads."""
    context = {"error_status": status, "error_title": title, "error_text": text}
    if status >= 500:
        context["request_id"] = current_request_id()
    return HttpResponse(loader.get_template("error_plain.html").render(context), status=status)


def _back_url(request: HttpRequest) -> str:
    """The page the reader came from (on this site, not the login form), else the nearest page above the
    action's address (`…/invoices/7/action/` → `…/invoices/7/`)."""
    referer = request.headers.get("Referer", "")
    if (
        referer
        and url_has_allowed_host_and_scheme(referer, {request.get_host()}, request.is_secure())
        and urlsplit(referer).path != resolve_url(settings.LOGIN_URL)
    ):
        return referer
    parts = request.path.rstrip("/").split("/")
    while len(parts) > 1:
        parts.pop()
        candidate = "/".join(parts) + "/"
        try:
            match = resolve(candidate)
        except Resolver404:
            continue
        if not is_api_path(candidate) and match.url_name != "logout":
            return candidate
    return ""


def bad_request(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return plain_error(400, _("Bad request"), _("The request could not be understood. Check the address."))
    if isinstance(exception, DisallowedHost):
        return error_response(400, "bad_request", HOST_REFUSED)
    return error_for_status(400)


def permission_denied(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return portal_error(
            request,
            403,
            _("You cannot open this page"),
            _(
                "Your role does not allow it. Ask your company's Meterline owner or your account manager if you "
                "need it."
            ),
        )
    return error_for_status(403)


def page_not_found(request: HttpRequest, exception: Exception, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return portal_error(
            request,
            404,
            _("Page not found"),
            _("There is nothing at this address, or it belongs to an account you cannot see."),
        )
    return error_for_status(404)


def method_not_allowed(request: HttpRequest) -> HttpResponse:
    """A portal action that a form's button performs, opened as a page (a bookmark, or the return after
    logging in again)."""
    return portal_error(
        request,
        405,
        _("This page cannot be opened directly"),
        _("It is an action that a button on another page performs. Go back to that page and use the button."),
        back=True,
    )


def server_error(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if not is_api_path(request.path):
        return plain_error(
            500,
            _("Something went wrong on our side"),
            _("Try again in a moment. If it keeps happening, tell support the request id below."),
        )
    return error_for_status(500)
