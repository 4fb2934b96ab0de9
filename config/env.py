"""Strict readers of the process environment: a bad value stops the process at start-up."""

import os
import urllib.parse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in the environment")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def _redis_database(parts: urllib.parse.SplitResult) -> tuple[int, dict[str, str]]:
    """The database number of a Redis URL split in parts, and its other query parameters."""
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
    # The query's `db`, else the path's number (a Unix socket's path is the socket: unix:///run/redis.sock?db=1).
    path = "" if parts.scheme == "unix" else parts.path.strip("/")
    named = query.pop("db", "") or path or "0"
    if not named.isdigit():
        raise ImproperlyConfigured(f"The Redis URL names database {named!r}, which is not a number")
    return int(named), query


def redis_url_database(redis_url: str) -> int:
    """The database number `redis_url` names (0 when it names none)."""
    return _redis_database(urllib.parse.urlsplit(redis_url))[0]


def redis_url_with_database(redis_url: str, database: int) -> str:
    """`redis_url` naming another database of the same Redis (TCP, TLS or a Unix socket)."""
    parts = urllib.parse.urlsplit(redis_url)
    _, query = _redis_database(parts)
    if parts.scheme == "unix":
        return f"unix://{parts.netloc}{parts.path}?{urllib.parse.urlencode({'db': database} | query)}"
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}", query=urllib.parse.urlencode(query)))


def celery_broker_url(redis_url: str) -> str:
    """Celery's broker URL for the Redis of `redis_url`. The same for TCP and TLS; Celery's Redis transport names a
    Unix socket (`unix:///run/redis.sock?db=1`) `redis+socket://` and its database `virtual_host`."""
    parts = urllib.parse.urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    database, query = _redis_database(parts)
    return f"redis+socket://{parts.netloc}{parts.path}?{urllib.parse.urlencode({'virtual_host': database} | query)}"
