"""The address a request comes from. Behind reverse proxies (`METERLINE_TRUSTED_PROXIES` of them, each appending the
address it received from to X-Forwarded-For), it is the entry the nearest untrusted hop was seen at; with none,
REMOTE_ADDR. Login throttling and anonymous rate limits count per this address."""

from typing import Any

from django.conf import settings


def client_address(meta: Any) -> str:
    remote = str(meta.get("REMOTE_ADDR") or "unknown")
    proxies = settings.METERLINE_TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if hop.strip()]
    # The last `proxies` entries were written by the trusted proxies; the client's own claims lie to their left.
    return hops[-proxies] if len(hops) >= proxies else remote
