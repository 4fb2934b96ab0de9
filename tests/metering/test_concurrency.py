"""8 parallel senders post overlapping batches, every event sent 3 times: each event is stored once,
rollups equal the sums of their events, and usage totals are exact."""

import datetime as dt
import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from billing.budgets import budget_create, counter_key, counter_rebuild, local_day, period_bounds
from core.redis import redis_client
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


def test_concurrent_corrections_of_one_estimate_correct_it_once(world, prices) -> None:
    """Eight senders race to replace the same estimate with real usage (single events and batches; two senders
    with each usage): one correction wins, the sender with its twin usage sees a duplicate, the others conflicts;
    the event keeps the winner's usage, once, and the rollups follow it exactly."""
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    results: dict[str, list[tuple[int, str]]] = {}
    errors: list[Exception] = []
    lock = threading.Lock()

    def sender(event_id: str, n: int, start: threading.Barrier) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
        event = {"event_id": event_id, "timestamp": when, "model": "gpt-4o"}
        event["usage"] = {"input_tokens": 100 + n % 4, "output_tokens": 20}
        try:
            start.wait(10)
            if n % 2:
                body = client.post("/api/v1/events", {"events": [event]}, format="json").json()
                outcome = next(k for k in ("corrected", "duplicates", "conflicts", "accepted") if body[k])
            else:
                response = client.post("/api/v1/events", event, format="json")
                outcome = "conflict" if response.status_code == 409 else response.json()["outcome"]
            with lock:
                results[event_id].append((n % 4, outcome.removesuffix("s")))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    budget = budget_create(
        actor=None, tenant=world.alpha, name="month", scope="tenant", period="month", limit_amount=Decimal(10**6)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.alpha_key_secret}")
    for trial in range(15):
        event_id = f"race-{trial}"
        estimate = {"event_id": event_id, "timestamp": when, "model": "gpt-4o", "request_chars": 400}
        assert client.post("/api/v1/events", estimate, format="json").json()["estimated"] == 1
        results[event_id] = []
        start = threading.Barrier(8)
        threads = [threading.Thread(target=sender, args=(event_id, n, start)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    for event_id, outcomes in results.items():
        kinds = sorted(outcome for _usage, outcome in outcomes)
        assert kinds == ["conflict"] * 6 + ["corrected", "duplicate"], (event_id, outcomes)
        [winner] = [usage for usage, outcome in outcomes if outcome == "corrected"]
        [twin] = [usage for usage, outcome in outcomes if outcome == "duplicate"]
        assert twin == winner
        event = UsageEvent.objects.get(tenant=world.alpha, event_id=event_id)
        assert not event.estimated and event.input_tokens == 100 + winner and event.output_tokens == 20
    assert rollups_verify() == []
    expected_cost = sum(UsageEvent.objects.values_list("cost", flat=True), Decimal(0))
    daily_cost = sum(flushed_rollups().filter(grain="day").values_list("cost", flat=True), Decimal(0))
    assert daily_cost == expected_cost > 0
    start = period_bounds("month", local_day(timezone.now(), world.alpha.timezone))[0]
    held = redis_client().hmget(counter_key(budget.pk, start), "cost", "tokens")
    assert (int(held[0]), int(held[1])) == counter_rebuild(budget, start, period_bounds("month", start)[1])


def test_concurrent_re_ratings_of_the_same_events_change_each_once(world, prices) -> None:
    """A new price starts the unpriced sweep and the price's window at once, on different workers, and both read the
    same events: each event is re-priced once, and the rollups and budget counters move by its change once."""
    from metering.prices import events_rerate, price_add
    from metering.services import IngestScope, events_ingest

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    budget = budget_create(
        actor=None, tenant=world.alpha, name="all", scope="tenant", period="month", limit_amount=Decimal(10**6)
    )
    moment = timezone.now() - dt.timedelta(minutes=30)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": f"r-{n}",
                "timestamp": iso(moment + dt.timedelta(seconds=n)),
                "model": "late-llm" if n % 2 else "gpt-4o",
                "usage": {"input_tokens": 1_000_000},
            }
            for n in range(400)
        ],
    )
    for provider, model in (("acme-ai", "late-llm"), ("openai", "gpt-4o")):  # a first price; a change entered late
        price_add(
            actor=None,
            provider=provider,
            model=model,
            prices={"input": Decimal(3), "output": Decimal(3)},
            effective_from=moment - dt.timedelta(minutes=5),
            rerate=False,
        )
    start = moment - dt.timedelta(minutes=10)
    runs = [
        lambda: events_rerate(only_unpriced=True, batch_size=50),
        lambda: events_rerate(models=["late-llm", "gpt-4o"], start=start, only_unpriced=False, batch_size=50),
        lambda: events_rerate(only_unpriced=False, start=start, batch_size=70),
    ]
    changed = [result.changed for result in at_once(runs)]
    assert sum(changed) == 400  # each event re-priced by one of them
    assert set(UsageEvent.objects.values_list("cost", flat=True)) == {Decimal(3)}
    assert rollups_verify() == []
    spent_day = local_day(timezone.now(), world.alpha.timezone)
    period_start, period_end = period_bounds("month", spent_day)
    live = redis_client().hmget(counter_key(budget.pk, period_start), "cost", "tokens")
    assert counter_rebuild(budget, period_start, period_end) == (int(live[0]), int(live[1]))


def test_concurrent_first_prices_of_a_model_chain_their_periods(world, prices) -> None:
    """Two admins add the first prices of a new model at the same moment, starting on different days: the book
    holds one row after the other (the earlier ends where the later starts), never two open rows."""
    from metering.models import ModelPrice
    from metering.prices import price_add

    starts = [dt.datetime(2026, 10, 1, tzinfo=dt.UTC) + dt.timedelta(days=n) for n in range(6)]

    def add(start: dt.datetime) -> Any:
        return price_add(
            actor=None,
            provider="acme-ai",
            model="fresh-llm",
            prices={"input": Decimal(start.day), "output": Decimal(1)},
            effective_from=start,
            rerate=False,
        )

    at_once([lambda start=start: add(start) for start in starts])
    rows = list(ModelPrice.objects.filter(model="fresh-llm").order_by("effective_from"))
    assert [(r.effective_from, r.effective_to) for r in rows] == list(zip(starts, [*starts[1:], None], strict=True))


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """The results of `calls`, each run in a thread of its own with its own database connection, all released at
    once; an exception in any of them fails the test."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[Exception] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results.append(call())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results
