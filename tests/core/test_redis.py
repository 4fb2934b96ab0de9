"""The hot paths' Redis round trip: several commands, one trip, replies in order; an error reply surfaces and the
next round trip still works; the outage warning is not repeated on every request."""

import logging
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
