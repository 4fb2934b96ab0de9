"""Fixtures shared by the billing tests: the price book, the hot path's Redis round trips, Redis going down."""

import pytest
import redis

from core import redis as core_redis
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture, shared)


@pytest.fixture
def round_trips(monkeypatch):  # type: ignore[no-untyped-def]
    """The batches of commands sent to Redis through the hot-path connection (a lone EXPIRE, which starts a new
    rate-limit window once a minute, is left out)."""
    sent: list[list[tuple]] = []
    pack = core_redis._pack

    def counting(connection, commands):  # type: ignore[no-untyped-def]
        if [command[0] for command in commands] != ["EXPIRE"]:
            sent.append([tuple(command) for command in commands])
        return pack(connection, commands)

    monkeypatch.setattr(core_redis, "_pack", counting)
    return sent


@pytest.fixture
def redis_down(monkeypatch):  # type: ignore[no-untyped-def]
    """Call it to make Redis unreachable: the hot paths' connection and the shared cache both fail."""
    from tenants import credential_cache

    def unreachable(client):  # type: ignore[no-untyped-def]
        raise redis.ConnectionError("Redis is down")

    class DownCache:
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            raise redis.ConnectionError("Redis is down")

    def down() -> None:
        monkeypatch.setattr(core_redis, "_thread_connection", unreachable)
        monkeypatch.setattr(credential_cache, "cache", DownCache())

    return down
