"""Portal pages of a tenant (/t/<slug>/…) show times in that tenant's time zone; staff pages across
tenants, and a tenant's address the reader may not see, in METERLINE_STAFF_TIMEZONE. The API always answers
ISO 8601 with the offset."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from core.middleware import is_api_path
from tenants.selectors import tenants_for_user


class TenantTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if is_api_path(request.path):
            return
        zone_name = settings.METERLINE_STAFF_TIMEZONE
        slug = kwargs.get("tenant")
        if isinstance(slug, str):
            # Only a tenant the reader may see: another tenant's page is a 404 that must not tell its zone.
            visible = tenants_for_user(getattr(request, "user", None))
            zone_name = visible.filter(slug=slug).values_list("timezone", flat=True).first() or zone_name
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone_name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo("UTC"))
