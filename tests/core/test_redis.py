"""The hot paths' Redis round trip: several commands, one trip, replies in order; an error reply surfaces and the
next round trip still works; the outage warning is not repeated on every request."""

import logging
import socket
import subprocess
import time

import pytest
import redis

from core.redis import redis_client, redis_run, warn_unavailable


def test_several_commands_travel_together_and_answer_in_order() -> None:
    redis_client().hset("test-hash", mapping={"cost": 5})
    replies = redis_run([("INCR", "test-counter"), ("INCR", "test-counter"), ("HMGET", "test-hash", "cost", "tokens")])
    assert replies == [1, 2, [b"5", None]]


def test_an_error_reply_is_raised_and_the_next_round_trip_works() -> None:
    redis_client().hset("test-hash", mapping={"cost": 5})
    with pytest.raises(redis.ResponseError):
        redis_run([("INCR", "test-hash"), ("GET", "test-missing")])  # INCR on a hash: WRONGTYPE
    assert redis_run([("GET", "test-missing"), ("INCR", "test-counter")]) == [None, 1]


def test_the_outage_warning_is_logged_once_in_a_while(caplog) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("tests.redis")
    with caplog.at_level(logging.WARNING, logger="tests.redis"):
        for _ in range(50):
            warn_unavailable(log, "test outage %s", "down")
    assert [r.getMessage() for r in caplog.records] == ["test outage down"]


def test_a_connection_closed_by_redis_while_idle_is_replaced(monkeypatch) -> None:
    from core import redis as core_redis

    monkeypatch.setattr(core_redis, "HEALTH_CHECK_SECONDS", 0.01)
    core_redis._thread.connection = None  # a new connection with the shorter health check
    [client_id] = redis_run([("CLIENT", "ID")])
    assert redis_client().client_kill_filter(_id=client_id) == 1  # as a Redis restart or an idle timeout would
    time.sleep(0.05)
    assert redis_run([("INCR", "test-counter")]) == [1]  # checked, found dead, replaced; counted once
    assert redis_client().get("test-counter") == b"1"
    core_redis._thread.connection = None


def test_redis_that_cannot_be_reached_or_refuses_the_connection_settings_is_a_redis_error() -> None:
    from core.redis import _SocketLink

    with pytest.raises(redis.ConnectionError):
        _SocketLink({"host": "127.0.0.1", "port": 1, "socket_connect_timeout": 0.5})
    kwargs = redis_client().connection_pool.connection_kwargs
    with pytest.raises(redis.AuthenticationError):  # this Redis has no password: AUTH is refused
        _SocketLink(kwargs | {"password": "not-the-password"})
    with pytest.raises(redis.ResponseError):  # a database this Redis does not have
        _SocketLink(kwargs | {"db": 100_000})


@pytest.mark.parametrize("through", ["socket", "redis-py connection"])
def test_round_trips_on_either_kind_of_connection(monkeypatch, through: str) -> None:  # type: ignore[no-untyped-def]
    from core import redis as core_redis

    if through == "redis-py connection":  # as for TLS, or without hiredis
        monkeypatch.setattr(core_redis, "_hiredis", None)
    core_redis._thread.connection = None
    try:
        redis_client().hset("test-hash", mapping={"cost": 5})
        assert redis_run([("INCR", "test-counter"), ("HMGET", "test-hash", "cost")]) == [1, [b"5"]]
        with pytest.raises(redis.ResponseError):
            redis_run([("INCR", "test-hash"), ("INCR", "test-counter")])
        assert redis_client().get("test-counter") == b"2"  # the command after the error reply ran, once
        assert redis_run([("GET", "test-counter")]) == [b"2"]  # and the connection is still in step
    finally:
        core_redis._thread.connection = None


@pytest.fixture
def unix_socket_redis(tmp_path):  # type: ignore[no-untyped-def]
    """A Redis of its own listening only on a Unix socket (as one on the same host may be reached)."""
    path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.05)
        yield path
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_round_trips_over_a_unix_socket_use_the_socket_link(unix_socket_redis, settings) -> None:  # type: ignore[no-untyped-def]
    from core import redis as core_redis

    settings.REDIS_URL = f"unix://{unix_socket_redis}?db=2"
    redis_client.cache_clear()
    core_redis._thread.connection = None
    try:
        link = core_redis._thread_connection(redis_client())
        assert isinstance(link, core_redis._SocketLink)
        assert link.sock is not None and link.sock.family == socket.AF_UNIX
        assert redis_run([("INCR", "test-counter"), ("INCR", "test-counter"), ("CLIENT", "INFO")])[:2] == [1, 2]
        with pytest.raises(redis.ResponseError):
            redis_run([("HGET", "test-counter", "cost"), ("INCR", "test-counter")])
        assert redis_run([("GET", "test-counter")]) == [b"3"]  # in step after the error reply
        assert redis_client().get("test-counter") == b"3"  # in the socket's database 2, through redis-py too
        assert redis.Redis(unix_socket_path=str(unix_socket_redis), db=0).get("test-counter") is None
    finally:
        core_redis._thread.connection = None
        redis_client.cache_clear()
    with pytest.raises(redis.ConnectionError):  # no Redis behind the path
        core_redis._SocketLink({"path": str(unix_socket_redis.parent / "none.sock"), "socket_connect_timeout": 0.5})


def test_celery_reaches_the_same_unix_socket_redis(unix_socket_redis) -> None:  # type: ignore[no-untyped-def]
    from kombu import Connection

    from config.env import celery_broker_url

    assert celery_broker_url("redis://127.0.0.1:6379/1") == "redis://127.0.0.1:6379/1"
    assert celery_broker_url("rediss://cache.example:6380/0") == "rediss://cache.example:6380/0"
    url = celery_broker_url(f"unix://{unix_socket_redis}?db=3")
    assert url == f"redis+socket://{unix_socket_redis}?virtual_host=3"
    redis.Redis(unix_socket_path=str(unix_socket_redis), db=3).set("test-broker", "here")
    with Connection(url) as broker:
        assert broker.default_channel.client.get("test-broker") == b"here"  # the socket's database 3


@pytest.mark.parametrize(
    ("url", "database", "other"),
    [
        ("redis://127.0.0.1:6379/1", 1, "redis://127.0.0.1:6379/14"),
        ("redis://127.0.0.1:6379", 0, "redis://127.0.0.1:6379/14"),
        (
            "rediss://:secret@cache.example:6380/2?ssl_cert_reqs=none",
            2,
            "rediss://:secret@cache.example:6380/14?ssl_cert_reqs=none",
        ),
        ("redis://127.0.0.1:6379/0?db=3", 3, "redis://127.0.0.1:6379/14"),  # the query's db wins, as in redis-py
        ("unix:///run/redis/redis.sock?db=1", 1, "unix:///run/redis/redis.sock?db=14"),
        ("unix:///run/redis/redis.sock", 0, "unix:///run/redis/redis.sock?db=14"),
    ],
)
def test_a_redis_url_names_its_database_and_another_of_the_same_redis(url: str, database: int, other: str) -> None:
    from config.env import redis_url_database, redis_url_with_database

    assert (
        redis_url_database(url) == database == redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)
    )
    assert redis_url_with_database(url, 14) == other
    assert redis.Redis.from_url(other).connection_pool.connection_kwargs["db"] == 14


@pytest.mark.parametrize(
    "url", ["unix:///run/redis/redis.sock?db=one", "redis://127.0.0.1:6379/x", "redis://h/0?db=-1"]
)
def test_a_redis_url_whose_database_is_not_a_number_stops_start_up_with_a_worded_error(url: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.env import celery_broker_url, redis_url_database

    with pytest.raises(ImproperlyConfigured, match="not a number"):
        redis_url_database(url)
    if url.startswith("unix:"):
        with pytest.raises(ImproperlyConfigured, match="not a number"):
            celery_broker_url(url)


def test_replies_of_sent_commands_are_read_later_in_order_even_after_another_round_trip() -> None:
    from core.redis import redis_send

    first = redis_send([("INCR", "test-counter"), ("INCR", "test-counter")])
    second = redis_send([("INCR", "test-counter")])
    assert redis_run([("GET", "test-counter")]) == [b"3"]  # reads what was outstanding before its own replies
    assert (first.get(), second.get()) == ([1, 2], [3])
    failing = redis_send([("HSET", "test-hash", "cost", 1), ("INCR", "test-hash")])
    with pytest.raises(redis.ResponseError):
        failing.get()
    assert redis_run([("INCR", "test-counter")]) == [4]


def test_a_connection_lost_before_sent_replies_are_read_raises_on_reading_them() -> None:
    from core import redis as core_redis
    from core.redis import redis_send

    core_redis._thread.connection = None
    [client_id] = redis_run([("CLIENT", "ID")])
    sent = redis_send([("BLPOP", "test-never", 0.3)])  # still waiting when its connection is killed
    assert redis_client().client_kill_filter(_id=client_id) == 1
    with pytest.raises(redis.ConnectionError):
        sent.get()
    assert redis_run([("INCR", "test-counter")]) == [1]  # a new connection serves the next round trip
    core_redis._thread.connection = None


def test_the_embedded_store_answers_the_counter_commands_as_redis_does() -> None:
    """`make demo` runs without Redis: its in-process store gives the replies budget counters rely on — among
    them whether an increment created its counter (EXPIRE … NX sets an expiry only where there was none)."""
    from core.redis import _LocalCounters

    commands = [
        ("EXPIRE", "test-period", 60, "NX"),  # no such key: nothing to expire
        ("HINCRBY", "test-period", "cost", 7),  # created by an increment
        ("HINCRBY", "test-period", "tokens", 3),
        ("EXPIRE", "test-period", 60, "NX"),  # it had no expiry: set
        ("HINCRBY", "test-period", "cost", 5),
        ("EXPIRE", "test-period", 60, "NX"),  # it has one
        ("HMGET", "test-period", "cost", "tokens", "stale"),
        ("DEL", "test-period"),
        ("HSET", "test-period", "cost", 1, "tokens", 2),  # rebuilt
        ("EXPIRE", "test-period", 60),
        ("EXPIRE", "test-period", 60, "NX"),
    ]
    expected = redis_run(commands)
    assert expected == [0, 7, 3, 1, 12, 0, [b"12", b"3", None], 1, 2, 1, 0]
    assert [int(r) if isinstance(r, bool) else r for r in _LocalCounters().run(commands)] == expected


def test_no_commands_make_no_round_trip(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Callers may have nothing to send (no counter was new): that costs nothing, not an empty exchange."""
    import core.redis as redis_module

    def no_connection(client):  # type: ignore[no-untyped-def]
        raise AssertionError("a connection was used")

    monkeypatch.setattr(redis_module, "_thread_connection", no_connection)
    assert redis_run([]) == []
