"""Per-credential rate limits: a fixed one-minute window counted atomically in the cache (Redis)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

WINDOW_SECONDS = 60


def credential_identity(request: Request) -> tuple[str, str]:
    """(kind, identity) of whoever is calling: the credential's prefix, the user, or the address."""
    from tenants.authentication import credential_kind

    kind, ident = credential_kind(request)
    if kind == "anonymous":
        ident = request.META.get("REMOTE_ADDR", "unknown")
    return kind, ident


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        kind, ident = credential_identity(request)
        limit = settings.METERLINE_RATE_LIMITS.get(kind, 0)
        if limit <= 0:
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"rl:{kind}:{ident}:{window}"
        # add() is a no-op when the key exists, incr() is atomic: no read-modify-write race.
        cache.add(key, 0, WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.add(key, 1, WINDOW_SECONDS + 5)
            count = 1
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return count <= limit

    def wait(self) -> float | None:
        return max(1.0, getattr(self, "_wait", WINDOW_SECONDS))
