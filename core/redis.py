"""The Redis client for real-time counters (budgets, quota). With no REDIS_URL (the embedded demo) an
in-process stand-in with the same few commands keeps the portal working on one machine."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from django.conf import settings


@cache
def redis_client() -> Any:
    url = getattr(settings, "REDIS_URL", "") or ""
    if url:
        import redis

        return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _LocalCounters()


class _LocalCounters:
    """hincrby / hmget / hset / expire / set(nx) / delete for the embedded demo (single process)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        return _Pipeline(self)

    def hincrby(self, key: str, field: str, amount: int) -> int:
        with self._lock:
            bucket = self._data.setdefault(key, {})
            bucket[field] = int(bucket.get(field, 0)) + amount
            return bucket[field]

    def hmget(self, key: str, *fields: str) -> list[Any]:
        with self._lock:
            bucket = self._data.get(key, {})
            return [bucket.get(f) for f in fields]

    def hset(self, key: str, mapping: dict[str, Any]) -> int:
        with self._lock:
            self._data.setdefault(key, {}).update(mapping)
            return len(mapping)

    def expire(self, key: str, seconds: int) -> bool:
        return True

    def set(self, key: str, value: Any, nx: bool = False, ex: int | None = None) -> bool:
        with self._lock:
            if nx and key in self._data:
                return False
            self._data[key] = value
            return True

    def delete(self, *keys: str) -> int:
        with self._lock:
            return sum(self._data.pop(k, None) is not None for k in keys)

    def flushdb(self) -> None:
        with self._lock:
            self._data.clear()


class _Pipeline:
    def __init__(self, client: _LocalCounters) -> None:
        self.client = client
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any, **kwargs: Any) -> _Pipeline:
            self.calls.append((name, args, kwargs))
            return self

        return queue

    def execute(self) -> list[Any]:
        return [getattr(self.client, name)(*args, **kwargs) for name, args, kwargs in self.calls]
