"""Work left until a hot request's response is sent runs then, once; anywhere else it runs at once."""

import logging

from django.core.signals import request_finished
from django.db import close_old_connections

from core.deferred import after_response, defer_until_response


def response_sent() -> None:
    """What the server does once the response is written (the database connection is left alone, as the test
    client does)."""
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)


def test_outside_a_hot_request_the_work_runs_at_once() -> None:
    done: list[str] = []
    after_response(lambda: done.append("now"))
    assert done == ["now"]


def test_in_a_hot_request_the_work_waits_for_the_response_to_be_sent_and_runs_once() -> None:
    done: list[str] = []
    defer_until_response()
    after_response(lambda: done.append("first"))
    after_response(lambda: done.append("second"))
    assert done == []
    response_sent()
    response_sent()
    assert done == ["first", "second"]
    after_response(lambda: done.append("after"))  # the request is over: at once again
    assert done == ["first", "second", "after"]


def test_failing_work_is_logged_and_the_rest_still_runs(caplog) -> None:  # type: ignore[no-untyped-def]
    done: list[str] = []
    defer_until_response()
    after_response(lambda: 1 / 0)  # type: ignore[func-returns-value]
    after_response(lambda: done.append("still"))
    with caplog.at_level(logging.ERROR, logger="core.deferred"):
        response_sent()
    assert done == ["still"]
    assert [r.getMessage() for r in caplog.records] == ["work after the response failed"]


def test_work_a_request_left_behind_runs_before_the_next_one_begins() -> None:
    done: list[str] = []
    defer_until_response()
    after_response(lambda: done.append("left"))
    defer_until_response()
    assert done == ["left"]
    response_sent()
    assert done == ["left"]
