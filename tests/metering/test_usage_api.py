"""Reading usage (SPEC §5.5): aggregates, raw events with cursor pagination, CSV/XLSX exports."""

import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
from django.utils import timezone

from metering.models import UsageEvent
from metering.services import IngestScope, events_ingest
from tests.metering.conftest import iso

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(world, prices):  # type: ignore[no-untyped-def]
    """Alpha: 3 chatbot events (2 models, 2 days), 1 research event; Bravo: 1 event. "Today" is ten minutes
    ago, but never before the tenant's local midnight, so that today and yesterday are two local days."""
    import zoneinfo

    now = timezone.now().replace(microsecond=0)
    midnight = now.astimezone(zoneinfo.ZoneInfo(world.alpha.timezone)).replace(hour=0, minute=0, second=0)
    today = max(now - dt.timedelta(minutes=10), midnight + dt.timedelta(seconds=30))
    yesterday = today - dt.timedelta(days=1)

    def send(key, events):  # type: ignore[no-untyped-def]
        result = events_ingest(scope=IngestScope(kind="project_key", api_key=key), raw_events=events)
        assert result.accepted == len(events), result.rejected

    send(
        world.alpha_key,
        [
            {
                "event_id": "a1",
                "timestamp": iso(today),
                "model": "gpt-4o",
                "feature": "chat",
                "end_user": "u1",
                "usage": {"input_tokens": 1000, "output_tokens": 100},
            },
            {
                "event_id": "a2",
                "timestamp": iso(today),
                "model": "claude-sonnet-4",
                "feature": "chat",
                "end_user": "u2",
                "usage": {"input_tokens": 2000, "output_tokens": 200},
            },
            {
                "event_id": "a3",
                "timestamp": iso(yesterday),
                "model": "gpt-4o",
                "feature": "search",
                "end_user": "u1",
                "usage": {"input_tokens": 500, "output_tokens": 50},
            },
        ],
    )
    from tests.factories import api_key_for

    research_key, _secret = api_key_for(world.alpha_other_project)
    send(
        research_key,
        [
            {
                "event_id": "r1",
                "timestamp": iso(today),
                "model": "gpt-4o",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            }
        ],
    )
    send(
        world.bravo_key,
        [
            {
                "event_id": "b1",
                "timestamp": iso(today),
                "model": "gpt-4o",
                "usage": {"input_tokens": 7, "output_tokens": 7},
            }
        ],
    )
    zone = zoneinfo.ZoneInfo(world.alpha.timezone)
    return {"start": (yesterday.astimezone(zone).date()).isoformat(), "end": today.astimezone(zone).date().isoformat()}


def test_usage_grouped_by_model_sums_the_events_exactly(world, usage) -> None:
    response = world.client("alpha_owner").get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "model"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["currency"] == "USD"
    by_model = {row["model"]: row for row in body["rows"]}
    assert by_model["gpt-4o"]["input_tokens"] == 1510 and by_model["gpt-4o"]["requests"] == 3
    assert by_model["claude-sonnet-4"]["output_tokens"] == 200
    expected = sum(UsageEvent.objects.filter(tenant=world.alpha).values_list("cost", flat=True), Decimal(0))
    assert Decimal(body["totals"]["cost"]) == expected
    assert body["totals"]["requests"] == 4


def test_usage_grouped_by_day_and_project_with_filters(world, usage) -> None:
    client = world.client("alpha_owner")
    response = client.get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "day,project", "model": "gpt-4o"}
    )
    rows = response.json()["rows"]
    assert {(r["project"], r["requests"]) for r in rows} >= {("chatbot", 1), ("research", 1)}
    assert all(set(r) >= {"day", "project", "cost"} for r in rows)
    by_feature = client.get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "feature", "department": "CS-1"}
    ).json()["rows"]
    assert {r["feature"]: r["requests"] for r in by_feature} == {"chat": 2, "search": 1}


def test_usage_by_end_user_and_by_api_key(world, usage) -> None:
    client = world.client("alpha_owner")
    by_user = client.get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "end_user"}
    ).json()["rows"]
    assert {r["end_user"]: r["requests"] for r in by_user} == {"u1": 2, "u2": 1, None: 1}
    by_key = client.get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "api_key,model", "end_user": "u1"}
    ).json()["rows"]
    assert [(r["api_key"], r["model"], r["requests"]) for r in by_key] == [(world.alpha_key.prefix, "gpt-4o", 2)]


def test_a_developer_reads_only_their_projects_usage(world, usage) -> None:
    rows = (
        world.client("alpha_dev")
        .get("/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "project"})
        .json()["rows"]
    )
    assert [r["project"] for r in rows] == ["chatbot"]


def test_a_project_key_reads_its_own_projects_usage(world, usage) -> None:
    body = (
        world.key_client(world.alpha_key_secret)
        .get("/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "project"})
        .json()
    )
    assert [r["project"] for r in body["rows"]] == ["chatbot"]


def test_bad_usage_queries_are_400_with_fields(world, usage) -> None:
    client = world.client("alpha_owner")
    response = client.get("/api/v1/usage", {"start": "2026-13-01", "group_by": "model,colour", "estimated": "yes"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"start", "group_by", "estimated"}
    reversed_range = client.get("/api/v1/usage", {"start": usage["end"], "end": usage["start"]})
    assert reversed_range.status_code == 400
    assert set(reversed_range.json()["error"]["fields"]) == {"end"}


def test_a_misspelt_filter_is_refused_rather_than_answering_the_whole_tenant(world, usage) -> None:
    """`projct=chatbot` named no filter: the answer was every project's usage, read as the chatbot's. Each usage
    endpoint refuses a parameter it does not know and takes its own (a cursor, a page size, a format)."""
    client = world.client("alpha_owner")
    for path, params in (
        ("/api/v1/usage", {"projct": "chatbot", "group_by": "model"}),
        ("/api/v1/usage/events", {"projct": "chatbot", "page_size": 2}),
        ("/api/v1/usage/export", {"projct": "chatbot", "format": "csv"}),
    ):
        refused = client.get(path, params)
        assert refused.status_code == 400, path
        assert refused.json()["error"]["fields"] == {"projct": ["Unknown parameter."]}, path
    queued = client.post("/api/v1/usage/exports?projct=chatbot", {"format": "csv"}, format="json")
    assert queued.status_code == 400 and "projct" in queued.json()["error"]["fields"]
    assert client.get("/api/v1/usage", {"project": "chatbot", "group_by": "model"}).status_code == 200
    assert client.get("/api/v1/usage", {"format": "json"}).status_code == 400  # the exports' parameter, not this
    assert client.get("/api/v1/usage/events", {"event_id": "a2", "rating_status": "priced"}).status_code == 200


def test_without_dates_usage_covers_the_last_30_days_of_the_tenants_calendar(world, usage) -> None:
    import zoneinfo

    client = world.client("alpha_owner")
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(world.alpha.timezone)).date()
    month = {"start": (today - dt.timedelta(days=29)).isoformat(), "end": today.isoformat(), "group_by": "day"}
    plain = client.get("/api/v1/usage", {"group_by": "day"})
    assert plain.status_code == 200 and plain.json() == client.get("/api/v1/usage", month).json()
    assert plain.json()["totals"]["requests"] == 4
    # One bound given: the other is counted from it.
    until = client.get("/api/v1/usage", {"end": usage["start"]})  # yesterday and the 29 days before: a3
    assert until.status_code == 200 and until.json()["totals"]["requests"] == 1
    since = client.get("/api/v1/usage", {"start": usage["end"]})
    assert since.status_code == 200 and since.json()["totals"]["requests"] == 3


def test_costs_of_nothing_are_plain_digits(world, usage) -> None:
    """A row of an unpriced model and the totals of an empty selection cost 0.0000000000, not 0E-10."""
    now = timezone.now()
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": "free-1", "timestamp": iso(now), "model": "no-such-model", "usage": {"input_tokens": 5}}
        ],
    )
    assert result.unpriced == 1
    client = world.client("alpha_owner")
    rows = client.get("/api/v1/usage", {"start": usage["start"], "end": usage["end"], "group_by": "model"}).json()[
        "rows"
    ]
    assert {r["model"]: r["cost"] for r in rows}["no-such-model"] == "0.0000000000"
    empty = client.get("/api/v1/usage", {"start": usage["start"], "end": usage["end"], "model": "none-of-these"}).json()
    assert empty["rows"] == [] and empty["totals"]["cost"] == "0.0000000000"


def test_another_tenants_usage_is_404(world, usage) -> None:
    response = world.client("bravo_owner").get(
        "/api/v1/usage", {"start": usage["start"], "end": usage["end"], "tenant": "alpha"}
    )
    assert response.status_code == 404


def test_raw_events_are_cursor_paginated_newest_first(world, usage) -> None:
    client = world.client("alpha_owner")
    first = client.get("/api/v1/usage/events", {"page_size": 2}).json()
    assert [e["event_id"] for e in first["results"]][:1] in (["a1"], ["a2"], ["r1"])
    second = client.get(first["next"]).json()
    ids = [e["event_id"] for e in first["results"] + second["results"]]
    assert sorted(ids) == ["a1", "a2", "a3", "r1"]
    assert ids[-1] == "a3"  # yesterday's is last
    one = client.get("/api/v1/usage/events", {"event_id": "a2"}).json()["results"]
    assert [(e["event_id"], e["model"], e["project"]) for e in one] == [("a2", "claude-sonnet-4", "chatbot")]


def test_a_cursor_the_api_did_not_hand_out_is_a_400(world, usage) -> None:
    response = world.client("alpha_owner").get("/api/v1/usage/events", {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"cursor": ["Use a next or previous link."]}


def test_raw_events_pages_go_both_ways_by_position_and_read_only_matching_hours(world, prices) -> None:
    """The API's pages go by the time and id of the last event shown: 1,250 events sharing one moment page through
    whole, next then previous back, each event once; with a rare filter only the hours the rollups say hold a match
    are read, and the pages equal what every event's walk gives. A stale cursor past the last event answers an empty
    page, not the first one again (a client following next links would never stop)."""
    import base64
    import zoneinfo

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metering.selectors import UsageQuery, matching_spans

    moment = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=3)
    same = [
        {"event_id": f"same-{n:04}", "timestamp": iso(moment), "model": "gpt-4o", "usage": {"input_tokens": 1}}
        for n in range(1250)
    ]
    rare = [
        {
            "event_id": f"rare-{n}",
            "timestamp": iso(moment - dt.timedelta(hours=5 * n + 1)),
            "model": "novel-model-x" if n == 1 else "gpt-4o",
            "feature": "rare",
            "end_user": "night-owl",
            "usage": {"input_tokens": 1},
        }
        for n in range(3)
    ]
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    assert events_ingest(scope=scope, raw_events=same + rare).accepted == 1253
    client = world.client("alpha_owner")

    def pages(params):  # type: ignore[no-untyped-def]
        body = client.get("/api/v1/usage/events", params).json()
        forward = [body]
        while forward[-1]["next"]:
            forward.append(client.get(forward[-1]["next"]).json())
        back = [forward[-1]]
        while back[-1]["previous"]:
            back.append(client.get(back[-1]["previous"]).json())
        ids = [[e["event_id"] for e in page["results"]] for page in forward]
        return ids, [[e["event_id"] for e in page["results"]] for page in back][::-1]

    forward, back = pages({"page_size": 250})
    assert [len(p) for p in forward] == [250, 250, 250, 250, 250, 3] and back == forward
    newest_first = UsageEvent.objects.filter(tenant=world.alpha).order_by("-occurred_at", "-id")
    assert [i for p in forward for i in p] == [e.event_id for e in newest_first]
    for params, expected in (
        ({"feature": "rare"}, ["rare-0", "rare-1", "rare-2"]),
        ({"end_user": "night-owl", "page_size": 1}, ["rare-0", "rare-1", "rare-2"]),
        ({"rating_status": "unpriced"}, ["rare-1"]),
        ({"feature": "rare", "rating_status": "unpriced", "page_size": 1}, ["rare-1"]),
        ({"feature": "none-such"}, []),
    ):
        forward, back = pages(params)
        assert [i for p in forward for i in p] == expected and back == forward, params
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(world.alpha.timezone))
    query = UsageQuery(world.alpha, today - dt.timedelta(days=35), today, [], {"feature": "rare"})
    spans = matching_spans(query)
    assert spans is not None and sum((b - a for a, b in spans), dt.timedelta()) <= dt.timedelta(hours=3)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/usage/events", {"feature": "none-such"}).json()["results"] == []
    assert not [q for q in queries.captured_queries if '"metering_usageevent"' in q["sql"]]

    last = client.get("/api/v1/usage/events", {"feature": "rare", "page_size": 3}).json()
    assert last["next"] is None
    stale = client.get("/api/v1/usage/events", {"feature": "rare", "page_size": 2}).json()["next"]
    UsageEvent.objects.filter(event_id="rare-2").delete()  # gone since the link was given (e.g. retention)
    after = client.get(stale).json()
    assert after["results"] == [] and after["next"] is None
    for forged in ("p=yesterday", "r=1&p=2026-01-01T00:00:00_12", "o=5"):
        cursor = base64.b64encode(forged.encode()).decode()
        response = client.get("/api/v1/usage/events", {"cursor": cursor})
        assert response.status_code == 400 and response.json()["error"]["fields"] == {
            "cursor": ["Use a next or previous link."]
        }, forged


def test_csv_export_holds_the_detailed_events(world, usage) -> None:
    response = world.client("alpha_owner").get("/api/v1/usage/export", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert lines[0].startswith("event_id,timestamp,department,project")
    assert len(lines) == 5


def test_xlsx_export_has_summary_and_detailed_sheets(world, usage) -> None:
    response = world.client("alpha_owner").get(
        "/api/v1/usage/export", {"format": "xlsx", "start": usage["start"], "end": usage["end"]}
    )
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Summary", "Detailed"]
    summary = list(book["Summary"].values)
    assert summary[0][:3] == ("department", "project", "requests")
    assert {(row[1], row[2]) for row in summary[1:]} == {("chatbot", 3), ("research", 1)}
    assert book["Detailed"].max_row == 5
    # Numbers are numbers (a finance sheet sums them), not text.
    header, *rows = book["Detailed"].values
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    a1 = by_id["a1"]
    assert (a1["input_tokens"], a1["output_tokens"], a1["billable"], a1["estimated"]) == (1000, 100, True, False)
    stored = UsageEvent.objects.get(tenant=world.alpha, event_id="a1").cost
    assert isinstance(a1["cost"], float | int) and Decimal(str(a1["cost"])) == stored
    assert a1["timestamp"].endswith("+00:00") and a1["latency_ms"] is None


@pytest.mark.parametrize("bad", ["9999-12-31", "0001-01-01", "2026-02-30", "2026-1-1x", "20260301", "2026-W09-1"])
def test_out_of_range_dates_are_400_not_500(world, bad) -> None:  # type: ignore[no-untyped-def]
    client = world.client("alpha_owner")
    for path in ("/api/v1/usage", "/api/v1/usage/events", "/api/v1/usage/export"):
        response = client.get(path, {"start": "2026-01-01", "end": bad})
        assert response.status_code == 400, (path, bad, response.status_code)


def test_counts_of_estimated_events_from_the_rollups_equal_the_events(world, usage) -> None:  # type: ignore[no-untyped-def]
    """usage_counts and usage_aggregate answer the estimated (or the real) events' number and cost from the
    rollups, which keep them apart: the events' own sums, under every filter; a correction moves the event."""
    from metering.selectors import UsageQuery, usage_aggregate, usage_counts

    when = iso(timezone.now() - dt.timedelta(minutes=5))
    estimate = {"event_id": "est-1", "timestamp": when, "model": "gpt-4o", "feature": "chat", "end_user": "u1"}
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {**estimate, "request_chars": 4000, "response_chars": 800},
            {**estimate, "event_id": "est-2", "feature": "search", "request_chars": 400, "response_chars": 80},
        ],
    )
    assert result.estimated == 2
    today = timezone.localdate()

    def both(**filters):  # type: ignore[no-untyped-def]
        query = UsageQuery(world.alpha, today - dt.timedelta(days=3), today + dt.timedelta(days=1), [], filters)
        totals = usage_aggregate(query)["totals"]
        events = UsageEvent.objects.filter(tenant=world.alpha, estimated=filters["estimated"])
        named = {"project": "project__slug"}
        events = events.filter(**{named.get(k, k): v for k, v in filters.items() if k != "estimated"})
        truth = (events.count(), sum((e.cost for e in events), Decimal(0)))
        assert (totals["requests"], totals["cost"]) == truth, filters
        return usage_counts(query), truth

    for filters in ({}, {"feature": "chat"}, {"project": "chatbot"}, {"end_user": "u1"}, {"model": "claude-sonnet-4"}):
        for flag in (True, False):
            counted, read = both(**filters, estimated=flag)
            assert counted == read, (filters, flag)
    assert both(estimated=True)[0][0] == 2 and both(estimated=True)[0][1] > 0
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:  # estimated or not, by model and day: from the rollups
        end = today + dt.timedelta(days=1)
        query = UsageQuery(world.alpha, today - dt.timedelta(days=3), end, ["model", "day"], {"estimated": True})
        assert sum(row["requests"] for row in usage_aggregate(query)["rows"]) == 2
    assert [q["sql"] for q in captured.captured_queries if "metering_usageevent" in q["sql"]] == []
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{**estimate, "usage": {"input_tokens": 900, "output_tokens": 150}}],
    )
    assert both(estimated=True)[0][0] == 1 == both(estimated=True)[1][0]
    assert both(estimated=False)[0] == both(estimated=False)[1]


@pytest.mark.parametrize("runs", [3, 13])
def test_one_end_users_usage_by_another_dimension_reads_only_their_days(world, prices, runs) -> None:
    """Usage of one end user grouped or filtered by what the end-user rollups do not keep (feature, model) is read
    from the events — only those of the local days the user has usage on, run by run, not every event of the
    period — and equals what the events of the whole period give, group by group; with more runs of days than are
    read apart, the period is read at once. Alpha half an hour off UTC: local days are not UTC days."""
    import re
    import zoneinfo

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metering.selectors import END_USER_RUNS, UsageQuery, events_for, usage_aggregate

    world.alpha.timezone = "Asia/Kolkata"
    world.alpha.save()
    zone = zoneinfo.ZoneInfo("Asia/Kolkata")
    today = timezone.now().astimezone(zone).date()
    raw = []
    for day in range(26):  # the crowd every day; the owl on every other day (13 runs) or on four days (3 runs)
        midnight = dt.datetime.combine(today - dt.timedelta(days=day + 1), dt.time(), tzinfo=zone)
        owl = day % 2 == 0 if runs == 13 else day in (1, 2, 9, 20)
        for n in range(6):
            raw.append(
                {
                    "event_id": f"d{day}-{n}",
                    "timestamp": iso(midnight + dt.timedelta(minutes=7 + 239 * n)),  # 00:07 … 19:58 local
                    "model": ("gpt-4o", "claude-sonnet-4")[n % 2],
                    "feature": ("chat", "search", "")[n % 3],
                    "end_user": "owl" if owl and n != 5 else "crowd",
                    "usage": {"input_tokens": 100 + day, "output_tokens": n},
                }
            )
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    assert events_ingest(scope=scope, raw_events=raw).accepted == len(raw)
    for group_by, filters in (
        (["feature"], {"end_user": "owl"}),
        (["day", "model"], {"end_user": "owl"}),
        (["end_user"], {"end_user": "owl", "model": "gpt-4o"}),
        ([], {"end_user": "owl", "feature": "chat"}),
    ):
        query = UsageQuery(world.alpha, today - dt.timedelta(days=29), today, group_by, filters)
        with CaptureQueriesContext(connection) as queries:
            found = usage_aggregate(query)
        events = list(events_for(query))
        assert found["totals"]["requests"] == len(events) > 0, (group_by, filters)
        assert found["totals"]["cost"] == sum((e.cost for e in events), Decimal(0))
        assert found["totals"]["input_tokens"] == sum(e.input_tokens for e in events)
        expected: dict[tuple, int] = {}
        for e in events:
            key = tuple(
                e.occurred_at.astimezone(zone).date().isoformat() if dim == "day" else (getattr(e, dim) or None)
                for dim in group_by
            )
            expected[key] = expected.get(key, 0) + 1
        assert {tuple(row[d] for d in group_by): row["requests"] for row in found["rows"]} == expected
        reads = [q["sql"] for q in queries.captured_queries if 'FROM "metering_usageevent"' in q["sql"]]
        assert len(reads) == (1 if runs > END_USER_RUNS else runs)
        for sql in reads:  # each run's local days, not the thirty asked for
            stamps = re.findall(r"'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[^']*)'", sql)
            moments = [dt.datetime.fromisoformat(m) for m in stamps]
            width = max(moments) - min(moments)
            assert width == dt.timedelta(days=30) if runs > END_USER_RUNS else width <= dt.timedelta(days=2), sql
