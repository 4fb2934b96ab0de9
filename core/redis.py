"""The Redis client for real-time counters (budgets, quota, rate limits). With no REDIS_URL (the embedded demo)
an in-process stand-in with the same few commands keeps the portal working on one machine.

`redis_run(commands)` sends several commands in one round trip on a connection this thread keeps to itself:
the hot paths (quota check, ingest) make one such round trip per request. It skips the client's per-command
bookkeeping (connection pool checkout, retries, instrumentation), which costs several times the round trip
itself here: over TCP or a Unix socket the commands are packed and the replies parsed by hiredis on the socket;
for TLS it uses redis-py's own connection."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import redis
from django.conf import settings


@cache
def redis_client() -> Any:
    url = getattr(settings, "REDIS_URL", "") or ""
    if url:
        return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _LocalCounters()


_thread = threading.local()
_warned: dict[str, float] = {}
WARN_EVERY_SECONDS = 10.0
HEALTH_CHECK_SECONDS = 30


def warn_unavailable(logger: logging.Logger, message: str, *args: Any) -> None:
    """Log that Redis is unavailable, at most once every WARN_EVERY_SECONDS per message in a process (the hot
    paths would otherwise log on every request while it is down)."""
    now = time.monotonic()
    if now - _warned.get(message, -1e9) >= WARN_EVERY_SECONDS:
        _warned[message] = now
        logger.warning(message, *args)


_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover  (redis-py's own packer and parser then)
    _hiredis = None


def redis_run(commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The replies of `commands` (each `("INCR", key)`, `("HMGET", key, "cost")`…), sent in one round trip.
    Raises redis.RedisError as the client would: ResponseError for an error reply (after reading every reply, so
    the connection stays in step), ConnectionError or TimeoutError when Redis cannot be reached. Commands are sent
    again on a new connection only when sending failed (a connection Redis had closed); once sent, they are not
    repeated, so an increment is never counted twice."""
    return redis_send(commands).get()


class Replies:
    """The replies of commands sent by `redis_send`: read when first asked for, or before this thread's next
    round trip (replies come back in the order commands were sent)."""

    __slots__ = ("count", "error", "replies")

    def __init__(self, count: int, replies: list[Any] | None = None) -> None:
        self.count = count
        self.replies = replies
        self.error: Exception | None = None

    def get(self) -> list[Any]:
        """The replies; raises as `redis_run` does."""
        if self.replies is None and self.error is None:
            _settle()
        if self.error is not None:
            raise self.error
        assert self.replies is not None
        for reply in self.replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return self.replies


def redis_send(commands: Sequence[Sequence[Any]]) -> Replies:
    """Send `commands` without waiting for their replies (`.get()` reads them): the caller does other work —
    answering its request — while Redis answers. Raises ConnectionError or TimeoutError when they cannot be
    sent; a failure to read them later is raised by `.get()`."""
    if not commands:  # nothing to send: no round trip
        return Replies(0, [])
    client = redis_client()
    if isinstance(client, _LocalCounters):
        return Replies(len(commands), client.run(commands))
    _settle()  # the connection carries one exchange at a time past this point
    link = _thread_connection(client)
    try:  # a connection idle for HEALTH_CHECK_SECONDS is checked with a PING first (and replaced if dead)
        link.check_health()
        link.send(_pack(link, commands))
    except (redis.ConnectionError, redis.TimeoutError):
        _drop(link)
        link = _thread_connection(client)
        link.send(_pack(link, commands))
    sent = Replies(len(commands))
    _thread.outstanding.append(sent)
    return sent


def _settle() -> None:
    """Read the replies of everything sent and not yet read on this thread's connection, in order."""
    outstanding: list[Replies] = getattr(_thread, "outstanding", None) or []
    if not outstanding:
        return
    _thread.outstanding = []
    if _thread.pid != os.getpid():  # a forked process: what its parent sent is its parent's to read
        return
    link = _thread.connection
    for index, sent in enumerate(outstanding):
        try:
            sent.replies = link.read(sent.count)
        except BaseException as exc:
            _drop(link)
            failure = exc if isinstance(exc, redis.RedisError) else redis.ConnectionError("Redis reply not read.")
            for unread in outstanding[index:]:
                unread.error = failure
            if not isinstance(exc, redis.RedisError):
                raise
            return


def _drop(link: Any) -> None:
    link.close()
    _thread.connection = None


def _pack(link: Any, commands: Sequence[Sequence[Any]]) -> Any:
    return link.pack(commands)


def _thread_connection(client: Any) -> Any:
    link = getattr(_thread, "connection", None)
    if link is None or _thread.pid != os.getpid():  # a forked worker opens its own
        pool = client.connection_pool
        kwargs = pool.connection_kwargs | {"health_check_interval": HEALTH_CHECK_SECONDS}
        if _hiredis is not None and pool.connection_class in (redis.Connection, redis.UnixDomainSocketConnection):
            link = _SocketLink(kwargs)
        else:  # TLS, or no hiredis: redis-py's own connection
            link = _ClientLink(pool.connection_class(**kwargs))
        _thread.connection, _thread.pid, _thread.outstanding = link, os.getpid(), []
    return link


class _SocketLink:
    """This thread's connection to Redis for the round trips, over TCP or a Unix socket (`unix://` URLs: the
    cheaper transport when Redis runs on the same host): commands packed and replies parsed by hiredis straight on
    the socket (redis-py's per-reply bookkeeping costs more than the parsing here). Address, database, credentials
    and timeouts are the client's."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.sock: socket.socket | None = None
        self.reader = _hiredis.Reader(replyError=redis.ResponseError)
        self.buffer = bytearray(65536)
        self.used = time.monotonic()
        connect_timeout = kwargs.get("socket_connect_timeout") or kwargs.get("socket_timeout")
        try:
            if kwargs.get("path"):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(connect_timeout)
                self.sock.connect(kwargs["path"])
            else:
                self.sock = socket.create_connection(
                    (kwargs.get("host") or "localhost", int(kwargs.get("port") or 6379)), timeout=connect_timeout
                )
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(kwargs.get("socket_timeout"))
        except TimeoutError as exc:
            self.close()
            raise redis.TimeoutError(f"Timeout connecting to Redis: {exc}") from exc
        except OSError as exc:
            self.close()
            raise redis.ConnectionError(f"Error connecting to Redis: {exc}") from exc
        hello: list[tuple[Any, ...]] = []
        if kwargs.get("password"):
            username = kwargs.get("username")
            hello.append(("AUTH", username, kwargs["password"]) if username else ("AUTH", kwargs["password"]))
        if kwargs.get("db"):
            hello.append(("SELECT", kwargs["db"]))
        if hello:
            try:
                self.send(self.pack(hello))
                replies = self.read(len(hello))
            except redis.RedisError:
                self.close()
                raise
            for (name, *_args), reply in zip(hello, replies, strict=True):
                if isinstance(reply, redis.ResponseError):
                    self.close()
                    raise redis.AuthenticationError(str(reply)) if name == "AUTH" else reply

    @staticmethod
    def pack(commands: Sequence[Sequence[Any]]) -> bytes:
        return b"".join([_hiredis.pack_command(tuple(command)) for command in commands])

    def check_health(self) -> None:
        if time.monotonic() - self.used >= HEALTH_CHECK_SECONDS:
            self.send(self.pack([("PING",)]))
            if self.read(1) != [b"PONG"]:
                raise redis.ConnectionError("Redis did not answer the health check.")

    def send(self, payload: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(payload)
        except TimeoutError as exc:
            raise redis.TimeoutError("Timeout writing to Redis.") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error writing to Redis: {exc}") from exc

    def read(self, count: int) -> list[Any]:
        """`count` replies; an error reply is returned in its place as a redis.ResponseError."""
        assert self.sock is not None
        replies: list[Any] = []
        while len(replies) < count:
            reply = self.reader.gets()
            if reply is not False:
                replies.append(reply)
                continue
            try:
                received = self.sock.recv_into(self.buffer)
            except TimeoutError as exc:
                raise redis.TimeoutError("Timeout reading from Redis.") from exc
            except OSError as exc:
                raise redis.ConnectionError(f"Error reading from Redis: {exc}") from exc
            if not received:
                raise redis.ConnectionError("Connection closed by Redis.")
            self.reader.feed(self.buffer, 0, received)
        self.used = time.monotonic()
        return replies

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _ClientLink:
    """The same round trips on one of redis-py's connections (Unix sockets, TLS, or without hiredis)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def pack(self, commands: Sequence[Sequence[Any]]) -> Any:
        return self.connection.pack_commands(commands)

    def check_health(self) -> None:
        self.connection.check_health()

    def send(self, payload: Any) -> None:
        self.connection.send_packed_command(payload, check_health=False)

    def read(self, count: int) -> list[Any]:
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(self.connection.read_response())
            except redis.ResponseError as exc:  # read whole: the following replies are still read
                replies.append(exc)
        return replies

    def close(self) -> None:
        self.connection.disconnect()


_LOCAL_NAMES = {"DEL": "delete"}


class _LocalCounters:
    """The commands Meterline uses, for the embedded demo (single process; expiry is not kept)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._expiring: set[str] = set()  # keys given an expiry (which is not kept otherwise)
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

    def expire(self, key: str, seconds: int, *options: Any, nx: bool = False, **kwargs: Any) -> bool:
        with self._lock:
            if key not in self._data or ((nx or "NX" in options) and key in self._expiring):
                return False
            self._expiring.add(key)
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
            self._expiring.difference_update(keys)
            return sum(self._data.pop(k, None) is not None for k in keys)

    def flushdb(self) -> None:
        with self._lock:
            self._data.clear()
            self._expiring.clear()


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
