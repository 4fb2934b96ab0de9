"""Per-credential rate limits: a fixed one-minute window counted atomically in the cache (Redis)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

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
        count = _count(key)
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return count <= limit

    def wait(self) -> float | None:
        return max(1.0, getattr(self, "_wait", WINDOW_SECONDS))


def _count(key: str) -> int:
    """Atomically count one more request in the window (no read-modify-write race)."""
    backend: Any = getattr(cache, "_cache", None)
    if backend is not None and hasattr(backend, "get_client"):  # Redis: INCR + EXPIRE in one round trip
        full_key = cache.make_and_validate_key(key)
        pipe = backend.get_client(full_key, write=True).pipeline()
        pipe.incr(full_key)
        pipe.expire(full_key, WINDOW_SECONDS + 5, nx=True)
        return int(pipe.execute()[0])
    cache.add(key, 0, WINDOW_SECONDS + 5)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add and incr
        cache.add(key, 1, WINDOW_SECONDS + 5)
        return 1
