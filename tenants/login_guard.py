"""Login throttling for the portal form and the token endpoint: failures counted per username and
per client address in a 15-minute window (atomic cache counters). An address has a limit of its own, well above a
username's: a company's people reach the portal from one address (an office's egress, a reverse proxy), and ten
mistakes among them must not lock every one of them out."""

import hashlib

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 15 * 60


def _keys(username: str, address: str) -> list[str]:
    user_digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
    return [f"login:u:{user_digest}", f"login:a:{address}"]


def login_wait_seconds(*, username: str, address: str) -> int:
    """0 when a login may be tried, else the seconds to wait."""
    user_key, address_key = _keys(username, address)
    counts = cache.get_many([user_key, address_key])
    if int(counts.get(user_key, 0)) >= settings.METERLINE_LOGIN_ATTEMPTS:
        return WINDOW_SECONDS
    if int(counts.get(address_key, 0)) >= settings.METERLINE_LOGIN_ATTEMPTS_PER_ADDRESS:
        return WINDOW_SECONDS
    return 0


def login_failed(*, username: str, address: str) -> None:
    for key in _keys(username, address):
        cache.add(key, 0, WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, WINDOW_SECONDS)


def login_succeeded(*, username: str, address: str) -> None:
    cache.delete(_keys(username, address)[0])
