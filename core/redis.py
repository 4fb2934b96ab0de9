"""The Redis client for real-time counters (budgets, quota, rate limits). With no REDIS_URL (the embedded demo)
an in-process stand-in with the same few commands keeps the portal working on one machine.

`redis_run(commands)` sends several commands in one round trip on a connection this thread keeps to itself:
the hot paths (quota check, ingest) make one such round trip per request. It skips the client's per-command
bookkeeping (connection pool checkout, retries, instrumentation), which costs several times the round trip
itself here; the commands are packed and their replies parsed by redis-py (hiredis when installed)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
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


_thread = threading.local()
_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover  (redis-py's own packer and parser then)
    _hiredis = None


def redis_run(commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The replies of `commands` (each `("INCR", key)`, `("HMGET", key, "cost")`…), sent in one round trip.
    Raises redis.RedisError (ConnectionError, TimeoutError, ResponseError) as the client would; a connection
    that failed is dropped and the commands are tried once more on a new one."""
    client = redis_client()
    if isinstance(client, _LocalCounters):
        return client.run(commands)
    import redis

    for attempt in (1, 2):
        connection = _thread_connection(client)
        try:
            connection.send_packed_command(_pack(connection, commands), check_health=False)
            replies = [connection.read_response() for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            _thread.connection = None
            if attempt == 2:
                raise
            continue
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies
    raise AssertionError("unreachable")


def _pack(connection: Any, commands: Sequence[Sequence[Any]]) -> Any:
    if _hiredis is not None:  # the C packer, without the client's per-argument checks (ours are str/int/bytes)
        return [b"".join([_hiredis.pack_command(tuple(command)) for command in commands])]
    return connection.pack_commands(commands)


def _thread_connection(client: Any) -> Any:
    connection = getattr(_thread, "connection", None)
    if connection is None or _thread.pid != os.getpid():  # a forked worker opens its own
        pool = client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        _thread.connection, _thread.pid = connection, os.getpid()
    return connection


_LOCAL_NAMES = {"DEL": "delete"}


class _LocalCounters:
    """The commands Meterline uses, for the embedded demo (single process; expiry is not kept)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.RLock()

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        return _Pipeline(self)

    def run(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        with self._lock:
            return [getattr(self, _LOCAL_NAMES.get(name, name.lower()))(*args) for name, *args in commands]

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._data.get(key)
            return str(value).encode() if value is not None else None

    def mget(self, *keys: str) -> list[Any]:
        return [self.get(key) for key in keys]

    def incr(self, key: str) -> int:
        with self._lock:
            self._data[key] = int(self._data.get(key, 0)) + 1
            return self._data[key]

    def hincrby(self, key: str, field: str, amount: int) -> int:
        with self._lock:
            bucket = self._data.setdefault(key, {})
            bucket[field] = int(bucket.get(field, 0)) + amount
            return bucket[field]

    def hmget(self, key: str, *fields: str) -> list[Any]:
        with self._lock:
            bucket = self._data.get(key, {})
            return [str(bucket[f]).encode() if f in bucket else None for f in fields]

    def hset(self, key: str, *pairs: Any, mapping: dict[str, Any] | None = None) -> int:
        values = dict(zip(pairs[::2], pairs[1::2], strict=True)) | (mapping or {})
        with self._lock:
            self._data.setdefault(key, {}).update(values)
            return len(values)

    def hdel(self, key: str, *fields: str) -> int:
        with self._lock:
            bucket = self._data.get(key, {})
            return sum(bucket.pop(f, None) is not None for f in fields)

    def expire(self, key: str, seconds: int, *options: Any, **kwargs: Any) -> bool:
        return True

    def set(self, key: str, value: Any, *options: Any, nx: bool = False, ex: int | None = None) -> bool:
        nx = nx or "NX" in options
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
