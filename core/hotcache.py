"""Records the hot paths read on every request (credentials, a tenant's budget index) kept in this process,
and trusted only while one Redis key, the generation, is unchanged.

Any change to such a record (a key revoked, a budget edited, a raise approved…) sets a new random generation;
each process drops everything it holds when it next sees a generation other than its own. The quota check and
ingest read the generation in the same round trip as their counters (`GENERATION_KEY` in `redis_run`) and call
`generation_seen`; other callers let `hot_get` read it when it was not read in this thread just now. Entries
also expire after `max_age` seconds (the exchange rate inside a budget index, for example, is a minute's)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

logger = logging.getLogger(__name__)
GENERATION_KEY = "ml-gen"
MAX_ENTRIES = 100_000
TRUST_SECONDS = 0.05  # a generation read this recently, in this thread, vouches for the entries

T = TypeVar("T")

_lock = threading.Lock()
_entries: dict[tuple[str, Any], tuple[float, Any]] = {}
_generation: list[bytes | None] = [None]
_thread = threading.local()


def generation_seen(value: bytes | None) -> bool:
    """Record the generation just read from Redis; False when it differs from the one the entries were
    loaded under (they are dropped)."""
    _thread.checked_at = time.monotonic()
    if value == _generation[0]:
        return True
    with _lock:
        _entries.clear()
        _generation[0] = value
    return False


def _ensure_checked() -> None:
    if time.monotonic() - getattr(_thread, "checked_at", -1e9) <= TRUST_SECONDS:
        return
    from core.redis import redis_run

    try:
        [value] = redis_run([("GET", GENERATION_KEY)])
    except Exception:  # noqa: BLE001  (Redis down: nothing can be vouched for)
        hot_clear()
        return
    generation_seen(value)


def hot_peek(namespace: str, key: Any, max_age: float) -> Any | None:
    """The entry as held, without checking the generation (the caller checks it in its own round trip)."""
    found = _entries.get((namespace, key))
    if found is None or time.monotonic() - found[0] > max_age:
        return None
    return found[1]


def hot_get(namespace: str, key: Any, load: Callable[[], T], max_age: float) -> T:
    """The entry, loaded with `load()` when missing, expired or of another generation (None is not kept)."""
    _ensure_checked()
    found = hot_peek(namespace, key, max_age)
    if found is None:
        generation = _generation[0]
        found = load()
        with _lock:
            if found is not None and _generation[0] == generation:  # not if a newer generation arrived while loading
                hot_put(namespace, key, found)
    return found


def hot_put(namespace: str, key: Any, value: Any) -> None:
    """Keep a value derived from entries as held (dropped with them when the generation turns out to differ)."""
    if len(_entries) >= MAX_ENTRIES:  # a bound on memory; everything is reloaded on demand
        _entries.clear()
    _entries[(namespace, key)] = (time.monotonic(), value)


def hot_forget(namespace: str, key: Any) -> None:
    _entries.pop((namespace, key), None)


def hot_clear() -> None:
    with _lock:
        _entries.clear()
        _generation[0] = None
    _thread.checked_at = -1e9


def hot_changed() -> None:
    """A record the hot paths hold has changed: every process reloads (now, for this transaction's own reads,
    and again once it commits)."""
    _bump()
    transaction.on_commit(_bump)


def _bump() -> None:
    from core.redis import redis_run

    hot_clear()
    try:
        redis_run([("SET", GENERATION_KEY, secrets.token_hex(8))])
    except Exception:  # noqa: BLE001  (Redis down: every process reads the database until it is back)
        logger.warning("hot-path generation not renewed (Redis unavailable)")
