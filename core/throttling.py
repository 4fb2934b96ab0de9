"""Per-credential rate limits: a fixed one-minute window counted atomically in Redis (INCR, with the window's
expiry set by the first request). The hot paths send `rate_limit_commands` in their own round trip."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from core.redis import redis_run

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


def credential_identity(request: Request) -> tuple[str, str]:
    """(kind, identity) of whoever is calling: the credential's prefix, the user, or the address."""
    from core.client_address import client_address
    from tenants.authentication import credential_kind

    kind, ident = credential_kind(request)
    if kind == "anonymous":
        ident = client_address(request.META)
    return kind, ident


class RateWindow:
    """One request counted in the caller's current window: send `commands`, then `allows(replies)`. The window's
    expiry is set after its first request (a second round trip once a minute per credential)."""

    def __init__(self, kind: str, ident: str) -> None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        self.limit = settings.METERLINE_RATE_LIMITS.get(kind, 0)
        self.wait = max(1.0, (window + 1) * WINDOW_SECONDS - now)
        self.key = f"mlrl:{kind}:{ident}:{window}"
        self.commands: list[tuple[Any, ...]] = [("INCR", self.key)] if self.limit > 0 else []

    def allows(self, replies: list[Any]) -> bool:
        if self.limit <= 0:
            return True
        count = int(replies[0])
        if count == 1:
            try:
                redis_run([("EXPIRE", self.key, WINDOW_SECONDS + 5)])
            except Exception:  # noqa: BLE001  (the window key names its minute: a missed expiry only keeps it longer)
                logger.warning("rate-limit window %s has no expiry (Redis unavailable)", self.key)
        return count <= self.limit


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        window = RateWindow(*credential_identity(request))
        self._wait = window.wait
        if not window.commands:
            return True
        return window.allows(redis_run(window.commands))

    def wait(self) -> float | None:
        return getattr(self, "_wait", WINDOW_SECONDS)
