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

from billing.budgets import budget_create, counter_key, period_bounds
from billing.models import BudgetAlert
from core.redis import redis_client
from metering.api import events_hot

pytestmark = pytest.mark.django_db


def test_counters_count_before_the_answer_and_the_alert_fires_after_it(
    world, prices, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    budget = budget_create(
        actor=None,
        tenant=world.alpha,
        name="tokens",
        scope="tenant",
        period="month",
        limit_tokens=10_000,
        thresholds=[50],
    )
    body = json.dumps(
        {
            "event_id": "deferred-1",
            "timestamp": (timezone.now() - dt.timedelta(seconds=5)).isoformat(),
            "model": "gpt-4o",
            "usage": {"input_tokens": 6_000, "output_tokens": 0},
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

    with django_capture_on_commit_callbacks(execute=True):  # committed, as in autocommit
        response = events_hot(request)

    assert response is not None and response.status_code == 201
    start, _end = period_bounds(budget.period, timezone.now().astimezone(dt.UTC).date())
    key = counter_key(budget.pk, start)
    assert redis_client().hget(key, "tokens") == b"6000"  # counted before the answer went out
    assert not BudgetAlert.objects.exists()  # the alert waits for the answer to be sent

    # the server has written the response and closes it (the connection is kept, as the test client does)
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)

    [alert] = BudgetAlert.objects.all()
    assert (alert.budget_id, alert.threshold) == (budget.pk, 50)
    assert redis_client().ttl(key) > 0  # the counter it created has its expiry
