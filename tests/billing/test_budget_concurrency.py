"""8 senders at once over HTTP around the thresholds: the counter equals the rollups afterwards and each
threshold fired exactly once."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from billing.budgets import COST_UNIT, budget_create, counter_key, counter_rebuild, period_bounds
from billing.models import BudgetAlert
from core.redis import redis_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_ingestion_counts_exactly_and_fires_each_threshold_once(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    budget = budget_create(
        actor=None,
        tenant=world.alpha,
        name="cap",
        scope="tenant",
        period="month",
        limit_amount=10,
        thresholds=[50, 80, 100],
    )
    now = timezone.now()
    # 400 events × 10,000 input tokens × 2.5 / 10^6 = 0.025 USD each → 10.00 USD: crosses 50, 80 and 100 %
    events = [
        {
            "event_id": f"c{n}",
            "timestamp": (now - dt.timedelta(seconds=n + 5)).isoformat(),
            "model": "gpt-4o",
            "usage": {"input_tokens": 10_000, "output_tokens": 0},
        }
        for n in range(400)
    ]
    batches = [events[i : i + 5] + events[max(0, i - 5) : i] for i in range(0, 400, 5)]  # overlapping: retries
    errors: list[Exception] = []

    def sender(mine) -> None:  # type: ignore[no-untyped-def]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
        try:
            for batch in mine:
                assert client.post("/api/v1/events", {"events": batch}, format="json").status_code == 200
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(batches[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    start, end = period_bounds("month", now.astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    live = [int(v) for v in redis_client().hmget(counter_key(budget.pk, start), "cost", "tokens")]
    assert live == list(counter_rebuild(budget, start, end)) == [int(Decimal(10) / COST_UNIT), 4_000_000]
    assert sorted(BudgetAlert.objects.filter(budget=budget).values_list("threshold", flat=True)) == [50, 80, 100]
