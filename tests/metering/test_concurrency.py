"""8 parallel senders post overlapping batches, every event sent 3 times: each event is stored once,
rollups equal the sums of their events, and usage totals are exact."""

import datetime as dt
import random
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from metering.models import UsageEvent
from metering.verification import rollups_verify
from tests.metering.conftest import flushed_rollups, iso

pytestmark = pytest.mark.django_db(transaction=True)


def test_overlapping_concurrent_batches_store_each_event_once(world, prices) -> None:
    base = timezone.now() - dt.timedelta(hours=3)
    rng = random.Random(7)
    events = []
    for n in range(600):
        events.append(
            {
                "event_id": f"c-{n}",
                "timestamp": iso(base + dt.timedelta(seconds=17 * n)),
                "model": rng.choice(["gpt-4o", "claude-sonnet-4", "o3"]),
                "usage": {"input_tokens": rng.randint(1, 5000), "output_tokens": rng.randint(1, 900)},
                "feature": rng.choice(["chat", "search"]),
                "end_user": f"u-{rng.randint(1, 9)}",
            }
        )
    sends = events * 3
    rng.shuffle(sends)
    batches = [sends[i : i + 75] for i in range(0, len(sends), 75)]
    errors: list[Exception] = []
    summaries = []
    lock = threading.Lock()

    def sender(my_batches) -> None:  # type: ignore[no-untyped-def]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
        try:
            for batch in my_batches:
                response = client.post("/api/v1/events", {"events": batch}, format="json")
                assert response.status_code == 200, response.content
                with lock:
                    summaries.append(response.json())
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
    assert sum(s["accepted"] for s in summaries) == 600
    assert sum(s["duplicates"] for s in summaries) == 1200
    assert sum(s["conflicts"] + len(s["rejected"]) for s in summaries) == 0
    assert UsageEvent.objects.count() == 600
    assert rollups_verify() == []
    call_command("verify_rollups")
    expected_cost = sum(UsageEvent.objects.values_list("cost", flat=True), Decimal(0))
    daily_cost = sum(flushed_rollups().filter(grain="day").values_list("cost", flat=True), Decimal(0))
    assert daily_cost == expected_cost > 0
