"""Each anomaly rule of SPEC §6 with a case that raises it and one that does not. Alpha is in Asia/Shanghai;
gpt-4o costs 2.5 USD per 1M input tokens, so 200,000 input tokens cost 0.50 USD."""

import datetime as dt
import zoneinfo

import pytest

from metering.anomalies import anomalies_scan, scan_day, scan_hour
from metering.models import Anomaly
from metering.services import IngestScope, events_ingest, rollups_flush

pytestmark = pytest.mark.django_db

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 18)  # the day under scan (a Wednesday)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZONE)


def send(world, events: list[tuple[dt.datetime, dict]]) -> None:  # type: ignore[no-untyped-def]
    """(moment, fields) pairs, each sent as it happened."""
    for n, (moment, fields) in enumerate(events):
        event = {
            "event_id": f"a-{moment:%Y%m%d%H%M%S}-{n}",
            "timestamp": moment.isoformat(),
            "model": "gpt-4o",
            "usage": {"input_tokens": fields.pop("tokens", 1000), "output_tokens": 0},
            **fields,
        }
        result = events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[event],
            now=moment + dt.timedelta(seconds=1),
        )
        assert not result.rejected, result.rejected
    rollups_flush()


def week_before(hour: int = 12, per_day: int = 1, **fields) -> list:  # type: ignore[no-untyped-def]
    return [
        (at(DAY - dt.timedelta(days=d), hour, minute), dict(fields)) for d in range(1, 8) for minute in range(per_day)
    ]


def kinds(found: list[Anomaly]) -> list[str]:
    return sorted(a.kind for a in found)


def test_daily_cost_spike(world, prices) -> None:
    send(world, week_before(tokens=200_000))  # 0.50 USD a day
    send(world, [(at(DAY, 10, m), {"tokens": 200_000}) for m in range(3)])  # 1.50 > 2 × 0.50
    [spike] = [a for a in scan_day(world.alpha, DAY) if a.kind == "daily_cost_spike"]
    assert (spike.observed, spike.expected, spike.ratio) == (1.5, 0.5, 3)
    assert scan_day(world.alpha, DAY) == []  # found once


def test_no_daily_spike_within_twice_the_mean(world, prices) -> None:
    send(world, week_before(tokens=200_000))
    send(world, [(at(DAY, 10, m), {"tokens": 180_000}) for m in range(2)])  # 0.90 < 1.00
    assert "daily_cost_spike" not in kinds(scan_day(world.alpha, DAY))


def test_end_user_hourly_spike(world, prices) -> None:
    send(world, week_before(end_user="u-1", tokens=20_000))  # 0.05 USD a day: a tiny hourly mean
    send(world, [(at(DAY, 15, m), {"end_user": "u-1", "tokens": 100_000}) for m in range(2)])  # 0.50 in one hour
    found = scan_hour(world.alpha, at(DAY, 16))
    assert [(a.kind, a.scope) for a in found if a.kind == "end_user_spike"] == [("end_user_spike", "end_user:u-1")]


def test_no_end_user_spike_for_ordinary_use(world, prices) -> None:
    send(world, week_before(end_user="u-1", tokens=20_000))
    send(world, [(at(DAY, 15), {"end_user": "u-1", "tokens": 80_000})])  # 0.20 < 5 × the 0.05 floor
    assert "end_user_spike" not in kinds(scan_hour(world.alpha, at(DAY, 16)))


def test_each_end_user_against_their_own_week_in_a_few_reads(world, prices, django_assert_max_num_queries) -> None:
    """Twelve end users in the hour: one read of all their weeks (not one each); the one whose hour is far above
    their own week spikes, the one as heavy as their own week does not."""
    send(world, week_before(end_user="heavy", tokens=4_000_000))  # 10 USD a day: 0.42 an hour
    for n in range(10):
        send(world, week_before(end_user=f"light-{n}", tokens=20_000))
    hour = [(at(DAY, 15, 1), {"end_user": "heavy", "tokens": 600_000})]  # 1.50: inside 5 × their own mean
    hour += [(at(DAY, 15, 2 + n), {"end_user": f"light-{n}", "tokens": 1_000}) for n in range(10)]
    hour += [
        (
            at(
                DAY,
                15,
                30,
            ),
            {"end_user": "light-7", "tokens": 200_000},
        )
    ]  # 0.50 in one hour
    hour += [(at(DAY, 15, 31), {"end_user": "newcomer", "tokens": 200_000})]  # no week: the floor
    send(world, hour)
    with django_assert_max_num_queries(14):  # 2 for the end users, 4 per anomaly recorded, 4 for the other rules
        found = scan_hour(world.alpha, at(DAY, 16))
    spikes = sorted(a.scope for a in found if a.kind == "end_user_spike")
    assert spikes == ["end_user:light-7", "end_user:newcomer"]


def test_oversized_request(world, prices) -> None:
    send(world, week_before(per_day=20, tokens=1_000))  # 140 requests of 1,000 tokens
    send(world, [(at(DAY, 9), {"tokens": 20_000}), (at(DAY, 9, 5), {"tokens": 1_200})])
    [outlier] = [a for a in scan_hour(world.alpha, at(DAY, 10)) if a.kind == "request_outlier"]
    assert (outlier.scope, outlier.observed, outlier.unit, outlier.details["requests"]) == (
        "project:chatbot",
        20_000,
        "tokens",
        1,
    )


def test_no_outlier_below_ten_times_the_mean(world, prices) -> None:
    send(world, week_before(per_day=20, tokens=1_000))
    send(world, [(at(DAY, 9), {"tokens": 9_000})])
    assert "request_outlier" not in kinds(scan_hour(world.alpha, at(DAY, 10)))


def test_burst_of_identical_calls(world, prices) -> None:
    calls = [(at(DAY, 14, m), {"prompt_template": "retry-v1", "end_user": "bot", "tokens": 100}) for m in range(55)]
    send(world, calls)
    [burst] = [a for a in scan_hour(world.alpha, at(DAY, 15)) if a.kind == "identical_burst"]
    assert (burst.scope, burst.observed) == ("prompt_template:retry-v1/end_user:bot", 55)


def test_each_burst_against_its_own_pair_of_the_week_before(world, prices) -> None:
    """Two bursts of 55 calls in the hour: the pair that made as many calls an hour all week is no burst; the other
    pair, sharing its template with the first and its end user with a third, is."""
    usual = [
        (at(DAY - dt.timedelta(days=d), h, m), {"prompt_template": "t1", "end_user": "u1", "tokens": 10})
        for d in range(1, 8)
        for h in range(24)
        for m in range(0, 60, 6)
    ]  # 10 calls an hour all week
    usual += [(at(DAY - dt.timedelta(days=2), 9, m), {"prompt_template": "t2", "end_user": "u2"}) for m in range(5)]
    send(world, usual)
    hour = [(at(DAY, 14, m), {"prompt_template": "t1", "end_user": "u1", "tokens": 10}) for m in range(55)]
    hour += [
        (
            at(
                DAY,
                14,
                m,
            ),
            {"prompt_template": "t1", "end_user": "u2", "tokens": 10},
        )
        for m in range(55)
    ]
    send(world, hour)
    bursts = [a for a in scan_hour(world.alpha, at(DAY, 15)) if a.kind == "identical_burst"]
    assert [(a.scope, a.observed) for a in bursts] == [("prompt_template:t1/end_user:u2", 55)]


def test_no_burst_for_a_busy_but_normal_pair(world, prices) -> None:
    calls = [(at(DAY, 14, m), {"prompt_template": "retry-v1", "end_user": "bot", "tokens": 100}) for m in range(40)]
    send(world, calls)
    assert "identical_burst" not in kinds(scan_hour(world.alpha, at(DAY, 15)))


def test_night_usage_where_nights_were_quiet(world, prices) -> None:
    send(world, week_before(hour=13))  # daytime only
    send(world, [(at(DAY, 1 + m // 20, m % 20), {"tokens": 100}) for m in range(40)])
    [night] = [a for a in scan_day(world.alpha, DAY) if a.kind == "night_usage"]
    assert (night.observed, night.unit) == (40, "requests")
    assert night.window_start == at(DAY, 0) and night.window_end == at(DAY, 5)


def test_no_night_anomaly_for_a_night_shift(world, prices) -> None:
    send(world, [(at(DAY - dt.timedelta(days=d), 2, m), {"tokens": 100}) for d in range(1, 8) for m in range(35)])
    send(world, [(at(DAY, 2, m), {"tokens": 100}) for m in range(40)])
    assert "night_usage" not in kinds(scan_day(world.alpha, DAY))


def test_month_over_month_growth(world, prices) -> None:
    send(world, [(at(dt.date(2026, 10, d), 12), {"tokens": 400_000}) for d in (2, 5)])  # 2.00 USD by Oct 18
    send(world, [(at(dt.date(2026, 11, d), 12), {"tokens": 400_000}) for d in (2, 5, 9, 12)])  # 4.00 by Nov 18
    [growth] = [a for a in scan_day(world.alpha, DAY) if a.kind == "month_growth"]
    assert (growth.observed, growth.expected, growth.ratio) == (4, 2, 2)


def test_no_growth_anomaly_below_fifty_percent(world, prices) -> None:
    send(world, [(at(dt.date(2026, 10, d), 12), {"tokens": 400_000}) for d in (2, 5)])
    send(
        world,
        [(at(dt.date(2026, 11, d), 12), {"tokens": 400_000}) for d in (2, 5)]
        + [(at(dt.date(2026, 11, 9), 12), {"tokens": 200_000})],
    )
    assert "month_growth" not in kinds(scan_day(world.alpha, DAY))


def test_anomalies_are_listed_and_sent_to_the_tenants_channels(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    from django.core import mail

    from billing.models import NotificationChannel

    NotificationChannel.objects.create(tenant=world.alpha, name="ops", kind="email", target="ops@alpha.example")
    send(
        world, [(at(DAY, 14, m), {"prompt_template": "retry-v1", "end_user": "bot", "tokens": 100}) for m in range(55)]
    )
    with django_capture_on_commit_callbacks(execute=True):
        found = anomalies_scan(now=at(DAY, 15, 30), tenants=[world.alpha])
    assert "identical_burst" in kinds(found)
    assert any("identical_burst" in m.body for m in mail.outbox)  # the payload, as JSON, below the text
    [burst] = [m for m in mail.outbox if "identical calls" in m.subject]
    window = f"{DAY:%Y-%m-%d} 14:00–15:00 UTC+08:00"  # the tenant's local hour
    assert burst.subject == (
        "Meterline: [ANOMALY] alpha: Burst of identical calls / 相同调用突发 — "
        f"prompt_template:retry-v1/end_user:bot: 55 calls, usually 1 (55.00×), {window}."
    )
    assert "/t/alpha/budgets/#anomalies" in burst.body
    listed = world.client("alpha_member").get("/api/v1/anomalies", {"kind": "identical_burst"}).json()["results"]
    assert [a["scope"] for a in listed] == ["prompt_template:retry-v1/end_user:bot"]
    assert world.client("bravo_owner").get(f"/api/v1/anomalies/{listed[0]['id']}").status_code == 404
    acked = world.client("alpha_admin").post(f"/api/v1/anomalies/{listed[0]['id']}/acknowledge").json()
    assert acked["status"] == "acknowledged"


def test_an_ordinary_weekday_rhythm_raises_nothing(world, prices) -> None:
    """Seven weeks of office hours (since October 1st): ten calls on weekdays, three at weekends, spread over the
    day's hours and users. Scanning every day of the last two weeks and every hour of the last day finds nothing."""
    last = DAY
    events = []
    for back in range((last - dt.date(2026, 10, 1)).days, -1, -1):
        day = last - dt.timedelta(days=back)
        calls = 10 if day.weekday() < 5 else 3
        events += [
            (at(day, 9 + n % 9, n), {"end_user": f"u-{n % 4}", "prompt_template": f"t-{n % 3}", "tokens": 80_000})
            for n in range(calls)
        ]
    send(world, events)
    found = []
    for back in range(14):
        found += scan_day(world.alpha, last - dt.timedelta(days=back))
    for hour in range(24):
        found += scan_hour(world.alpha, at(last, 0) + dt.timedelta(hours=hour + 1))
    assert [(a.kind, a.scope, str(a.window_start)) for a in found] == []
