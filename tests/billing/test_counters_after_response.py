"""On the hot ingest route the budget counters are incremented before the response is sent, and their replies —
with the alerts they call for — are read once it is: a client that has its answer sees the new spend, and the
alert follows without holding the answer back."""

import datetime as dt
import io
import json

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import RequestFactory
from django.utils import timezone

from billing.budgets import budget_create, budget_states, counter_key, period_bounds
from billing.models import BudgetAlert
from core.redis import redis_client
from metering.api import events_hot

pytestmark = pytest.mark.django_db


def test_counters_count_before_the_answer_and_the_alert_fires_after_it(
    world, prices, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    budget, key = _token_budget(world, thresholds=[50])
    with django_capture_on_commit_callbacks(execute=True):  # committed, as in autocommit
        response = _post(world, "deferred-1", 6_000)

    assert response is not None and response.status_code == 201
    assert redis_client().hget(key, "tokens") == b"6000"  # counted before the answer went out
    assert not BudgetAlert.objects.exists()  # the alert waits for the answer to be sent

    _response_sent()

    [alert] = BudgetAlert.objects.all()
    assert (alert.budget_id, alert.threshold) == (budget.pk, 50)
    assert redis_client().ttl(key) > 0  # the counter it created has its expiry


def test_a_counter_an_increment_creates_starts_from_the_spend_already_recorded(
    world, prices, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """Usage stored while the period's counter did not exist (Redis lost it, or demo data was seeded without it)
    is not forgotten when the next event creates the counter: the counter is rebuilt from the rollups, and the
    threshold the new event crosses fires."""
    budget, key = _token_budget(world, thresholds=[50, 90])
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(world, "before-the-loss", 4_000).status_code == 201
    _response_sent()
    assert redis_client().hget(key, "tokens") == b"4000"
    redis_client().delete(key)  # the counter is lost; the stored usage is not

    with django_capture_on_commit_callbacks(execute=True):
        assert _post(world, "after-the-loss", 2_000).status_code == 201
    _response_sent()

    assert redis_client().hget(key, "tokens") == b"6000"
    assert redis_client().ttl(key) > 0
    [state] = budget_states([budget])
    assert state.spent == 6_000
    assert [alert.threshold for alert in BudgetAlert.objects.filter(budget=budget)] == [50]


def _token_budget(world, thresholds: list[int]):  # type: ignore[no-untyped-def]
    """A monthly budget of 10,000 tokens for Alpha, and the key of its current counter."""
    budget = budget_create(
        actor=None,
        tenant=world.alpha,
        name="tokens",
        scope="tenant",
        period="month",
        limit_tokens=10_000,
        thresholds=thresholds,
    )
    start, _end = period_bounds(budget.period, timezone.now().astimezone(dt.UTC).date())
    return budget, counter_key(budget.pk, start)


def _post(world, event_id: str, tokens: int):  # type: ignore[no-untyped-def]
    """One event on the hot route, as a gateway sends it."""
    body = json.dumps(
        {
            "event_id": event_id,
            "timestamp": (timezone.now() - dt.timedelta(seconds=5)).isoformat(),
            "model": "gpt-4o",
            "usage": {"input_tokens": tokens, "output_tokens": 0},
        }
    ).encode()
    request = RequestFactory().generic(
        "POST",
        "/api/v1/events",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}",
    )
    request.META["wsgi.input"] = io.BytesIO(body)
    response = events_hot(request)
    assert response is not None
    return response


def _response_sent() -> None:
    """The server has written the response and closes it (the connection is kept, as the test client does)."""
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)
