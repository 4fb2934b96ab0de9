"""A tenant's days are its local calendar days, also on the days its clocks change (a 25-hour and a 23-hour day)
and where its offset is not a whole hour: usage by day, the day rollups and the events agree."""

import datetime as dt
from decimal import Decimal

import pytest

from metering.selectors import UsageQuery, usage_aggregate
from metering.services import IngestScope, events_ingest
from metering.verification import rollups_verify

pytestmark = pytest.mark.django_db


def _send(world, stamps: list[str], now: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    events = [
        {"event_id": f"local-{n}", "timestamp": stamp, "model": "gpt-4o", "usage": {"input_tokens": 1000 * (n + 1)}}
        for n, stamp in enumerate(stamps)
    ]
    result = events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=events, now=now)
    assert result.accepted == len(stamps), result.rejected


def _requests_by_day(world, start: dt.date, end: dt.date, **filters: object) -> dict[str, int]:  # type: ignore[no-untyped-def]
    answer = usage_aggregate(UsageQuery(tenant=world.alpha, start=start, end=end, group_by=["day"], filters=filters))
    return {row["day"]: row["requests"] for row in answer["rows"]}


@pytest.mark.parametrize(
    ("zone", "stamps", "expected", "start", "end"),
    [
        (  # New York leaves daylight saving time on 2026-11-01: that day has 25 hours, 01:30 happens twice
            "America/New_York",
            [
                "2026-10-31T23:59:00-04:00",
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T23:30:00-05:00",
                "2026-11-02T00:10:00-05:00",
            ],
            {"2026-10-31": 1, "2026-11-01": 4, "2026-11-02": 1},
            dt.date(2026, 10, 31),
            dt.date(2026, 11, 2),
        ),
        (  # Berlin leaves it on 2026-10-25 at 03:00 CEST
            "Europe/Berlin",
            [
                "2026-10-24T23:59:59+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-26T00:00:00+01:00",
            ],
            {"2026-10-24": 1, "2026-10-25": 2, "2026-10-26": 1},
            dt.date(2026, 10, 24),
            dt.date(2026, 10, 26),
        ),
        (  # Kathmandu is UTC+05:45: one UTC hour spans two local days
            "Asia/Kathmandu",
            ["2026-11-01T18:10:00Z", "2026-11-01T18:20:00Z", "2026-11-01T18:50:00Z"],
            {"2026-11-01": 1, "2026-11-02": 2},
            dt.date(2026, 11, 1),
            dt.date(2026, 11, 2),
        ),
    ],
)
def test_days_are_the_tenants_calendar_days(world, prices, zone, stamps, expected, start, end) -> None:  # type: ignore[no-untyped-def]
    world.alpha.timezone = zone
    world.alpha.save(update_fields=["timezone"])
    now = dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)
    _send(world, stamps, now)
    assert _requests_by_day(world, start, end) == expected
    assert rollups_verify() == []
    # The same days read from the events themselves (a filter the day rollups do not hold).
    assert _requests_by_day(world, start, end, estimated=False) == expected
    total = usage_aggregate(UsageQuery(tenant=world.alpha, start=start, end=end, group_by=["model"]))["totals"]
    assert total["requests"] == len(stamps) and total["cost"] > Decimal(0)
