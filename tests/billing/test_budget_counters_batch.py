"""A batch counts toward budgets once per group of events budgets cannot tell apart: the live counters still
equal the sums of the events, period by period, across a local midnight in a time zone 5:45 from UTC."""

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from billing.budgets import budget_create, counter_key, counter_rebuild, period_bounds
from core.redis import redis_client
from metering.services import IngestScope, events_ingest

pytestmark = pytest.mark.django_db(transaction=True)  # counters follow committed events
KATHMANDU = zoneinfo.ZoneInfo("Asia/Kathmandu")


def test_batch_counters_equal_the_events_of_each_local_day(world, prices) -> None:
    world.alpha.timezone = "Asia/Kathmandu"
    world.alpha.save()
    now = timezone.now()
    midnight = dt.datetime.combine(now.astimezone(KATHMANDU).date(), dt.time(), tzinfo=KATHMANDU)
    if now - midnight < dt.timedelta(minutes=30):
        midnight -= dt.timedelta(days=1)  # a midnight with events on both sides and none in the future
    daily = budget_create(
        actor=None, tenant=world.alpha, name="day", scope="tenant", period="day", limit_tokens=10**9, thresholds=[99]
    )
    per_user = budget_create(
        actor=None,
        tenant=world.alpha,
        name="u1",
        scope="end_user",
        scope_value="u1",
        period="month",
        limit_tokens=10**9,
        thresholds=[99],
    )
    events = [
        {
            "event_id": f"b{n}",
            "timestamp": (midnight + dt.timedelta(minutes=n - 20)).isoformat(),  # 20 minutes before to 19 after
            "model": ("gpt-4o", "o3")[n % 2],
            "end_user": f"u{n % 3}",
            "feature": f"f{n % 2}",
            "usage": {"input_tokens": 1000 + n, "output_tokens": 10 * n},
        }
        for n in range(40)
    ]
    result = events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=events)
    assert result.accepted == 40

    for budget, day in (
        (daily, midnight.date() - dt.timedelta(days=1)),
        (daily, midnight.date()),
        (per_user, midnight.date()),
    ):
        start, end = period_bounds(budget.period, day)
        live = [int(v or 0) for v in redis_client().hmget(counter_key(budget.pk, start), "cost", "tokens")]
        assert live == list(counter_rebuild(budget, start, end))
        assert live[1] > 0
