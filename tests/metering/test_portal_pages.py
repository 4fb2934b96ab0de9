"""Portal: the usage explorer and events page (tenants), the price book and unpriced queue (platform)."""

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from metering.models import UsageEvent
from tests.metering.test_usage_api import usage  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def _client(world, who: str) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(world.users[who])
    return client


def test_the_explorer_shows_totals_chart_and_groups(world, usage) -> None:  # noqa: F811
    page = _client(world, "alpha_owner").get("/t/alpha/usage/", {"preset": "7d", "group_by": "model"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and 'role="img"' in html and "<desc" in html
    assert "gpt-4o" in html and "claude-sonnet-4" in html
    rows = page.context["rows"]
    assert sum(r["requests"] for r in rows) == 4
    assert rows[0]["cost"] >= rows[-1]["cost"]  # most expensive first
    assert "/api/v1/usage/export?format=xlsx" in html
    assert page.context["peak"][1] > 0
    empty = _client(world, "alpha_owner").get("/t/alpha/usage/", {"preset": "7d", "model": "no-such-model"})
    assert empty.context["peak"] is None and "Highest:" not in empty.content.decode()  # no cost, no highest day


def test_numbers_are_grouped_by_thousands_in_chinese_too(world, usage) -> None:  # noqa: F811
    """Token counts read 1,000 in both languages, as the amounts Babel formats on the same pages do."""
    client = _client(world, "alpha_owner")
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    page = client.get("/t/alpha/usage/", {"preset": "7d", "group_by": "model"})
    totals = page.context["totals"]
    tokens = totals["input_tokens"] + totals["cached_input_tokens"] + totals["cache_write_tokens"]
    assert tokens >= 1000
    assert "用量" in page.content.decode() and f'<p class="big">{tokens:,}</p>' in page.content.decode()


def test_the_explorer_filters_and_drills_down_to_events(world, usage) -> None:  # noqa: F811
    client = _client(world, "alpha_owner")
    page = client.get("/t/alpha/usage/", {"preset": "7d", "group_by": "feature", "model": "gpt-4o"})
    by_feature = {r["feature"]: r for r in page.context["rows"]}
    assert set(by_feature) == {"chat", "search", None}
    events = client.get("/t/alpha/usage/events/" + by_feature["chat"]["events_url"])
    listed = [e.event_id for e in events.context["page"].object_list]
    assert listed == ["a1"]


@pytest.mark.parametrize(
    "dates",
    [
        {"start": "9999-12-31", "end": "0001-01-01"},
        {"start": "9999-12-31"},
        {"start": "garbage"},
        {"start": "2026-W45-1"},
        {"start": "2026-11-01", "end": "2026-02-30"},
    ],
)
def test_dates_the_explorer_cannot_read_show_the_last_30_days_and_say_so(world, usage, dates) -> None:  # noqa: F811
    client = _client(world, "alpha_owner")
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(world.alpha.timezone))
    for path in ("/t/alpha/usage/", "/t/alpha/usage/events/"):
        page = client.get(path, dates)
        assert page.status_code == 200, (path, dates)
        state = page.context["state"]
        assert (state["start"], state["end"], state["preset"]) == (today - dt.timedelta(days=29), today, "30d")
        assert "Dates are YYYY-MM-DD between 2000 and 2100" in page.content.decode()


def test_the_events_page_shows_a_long_id_by_its_start_and_end(world, usage) -> None:  # noqa: F811
    """Ids of one sender share a long prefix: the list keeps the end that tells them apart, the whole id on hover."""
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    long_id = "gateway-eu-west/chatbot-production-20261123-000417"
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{"event_id": long_id, "timestamp": when, "model": "gpt-4o", "usage": {"input_tokens": 5}}],
    )
    assert result.accepted == 1
    html = _client(world, "alpha_owner").get("/t/alpha/usage/events/", {"preset": "7d"}).content.decode()
    assert f'<code title="{long_id}">gateway-eu-…61123-000417</code>' in html
    assert '<code title="a1">a1</code>' in html  # a short id as it is


def test_the_events_page_shows_every_bucket_the_cost_is_made_of(world, usage) -> None:  # noqa: F811
    """Cache writes and reasoning are priced apart: a row that left them out could not be checked against its cost."""
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    usage_object = {
        "input_tokens": 1100,
        "cache_read_input_tokens": 2200,
        "cache_creation_input_tokens": 3300,
        "output_tokens": 440,
    }
    when = iso(timezone.now() - dt.timedelta(minutes=5))
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[{"event_id": "buckets", "timestamp": when, "model": "claude-sonnet-4", "usage": usage_object}],
    )
    html = _client(world, "alpha_owner").get("/t/alpha/usage/events/", {"preset": "7d"}).content.decode()
    head = html.split("<thead>")[1].split("</thead>")[0]
    assert [name in head for name in ("Input", "Cached", "Cache write", "Output", "Reasoning")] == [True] * 5
    row = html.split('<code title="buckets">')[1].split("</tr>")[0]
    assert [f'<td class="num">{n}</td>' in row for n in ("1,100", "2,200", "3,300", "440")] == [True] * 4


def test_a_developer_explores_only_their_projects(world, usage) -> None:  # noqa: F811
    page = _client(world, "alpha_dev").get("/t/alpha/usage/", {"preset": "7d", "group_by": "project"})
    assert [r["project"] for r in page.context["rows"]] == ["chatbot"]


def test_the_explorer_in_chinese(world, usage) -> None:  # noqa: F811
    client = _client(world, "alpha_owner")
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    html = client.get("/t/alpha/usage/").content.decode()
    assert "用量" in html and "每日费用" in html and "导出 CSV" in html


def test_platform_admins_see_the_price_book_and_unpriced_queue(world, usage) -> None:  # noqa: F811
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import add_price, iso

    client = _client(world, "platform")
    assert "gpt-4o" in client.get("/staff/prices/", {"q": "gpt"}).content.decode()
    from django.utils import timezone

    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": "u-1",
                "timestamp": iso(timezone.now()),
                "model": "odd-model",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        ],
    )
    assert "odd-model" in client.get("/staff/prices/unpriced/").content.decode()
    add_price("odd-model", input="1", output="1")
    response = client.post("/staff/prices/unpriced/rerate/", follow=True)
    assert "1 events priced" in response.content.decode()
    assert UsageEvent.objects.get(event_id="u-1").rating_status == "priced"


def test_the_price_book_shows_each_price_exactly_with_two_decimals_at_least(world, prices) -> None:
    from tests.metering.conftest import add_price

    add_price("tiny-model", input="0.01875", cached_input="0.0046875", output="0.075")
    html = _client(world, "platform").get("/staff/prices/").content.decode()
    cells = re.findall(r'<td class="num">([^<]*)</td>', html)
    assert cells[:5] == ["3.00", "0.30", "3.75", "15.00", "—"]  # claude-sonnet-4, first by provider
    assert ["0.01875", "0.0046875", "—", "0.075", "—"] in [cells[i : i + 5] for i in range(0, len(cells), 5)]
    assert "0.0188" not in html  # never rounded


def test_tenant_users_cannot_open_the_price_book(world) -> None:
    assert _client(world, "alpha_owner").get("/staff/prices/").status_code == 403


def test_the_explorer_stacks_the_daily_chart_by_the_chosen_group(world, usage) -> None:  # noqa: F811
    page = _client(world, "alpha_owner").get("/t/alpha/usage/", {"preset": "7d", "group_by": "model"})
    stacked = page.context["stacked"]
    legend = {s["label"]: s["value"] for s in stacked["legend"]}
    assert set(legend) == {"gpt-4o", "claude-sonnet-4"}
    rows = {r["model"]: r["cost"] for r in page.context["rows"]}
    assert legend == rows  # the layers add up to the table
    assert sum(seg.value for seg in stacked["segments"]) == page.context["totals"]["cost"]
    html = page.content.decode()
    assert 'fill="url(#series-1)"' in html and '<ul class="legend">' in html  # patterns, not colour alone
    assert "gpt-4o:" in html.split('id="stacked-desc"')[1].split("</desc>")[0]
    by_day = _client(world, "alpha_owner").get("/t/alpha/usage/", {"preset": "7d", "group_by": "day"})
    assert by_day.context["stacked"] is None


def test_with_thousands_of_groups_the_explorer_shows_the_largest_and_sums_the_rest(world, prices) -> None:
    """A tenant's thousands of end users: the table holds the hundred largest and one line summing the others (the
    page rendered every one — 5,051 rows, 2 MB, 1.9 s on the bench tenant), and the stacked chart sums by day only
    the five it names, the rest being each day's total less them. Lines, legend and segments add up to the totals
    exactly, for every grouping, the usage without an end user, a feature or a key included."""
    from metering.services import IngestScope, events_ingest
    from metering.views import TABLE_ROWS
    from tests.metering.conftest import iso

    now = timezone.now()
    raw = [
        {
            "event_id": f"crowd-{n}",
            "timestamp": iso(now - dt.timedelta(days=n % 4, minutes=5)),
            "model": ("gpt-4o", "claude-sonnet-4")[n % 2],
            "feature": f"f{n % 9}" if n % 10 else "",
            "end_user": f"user-{n % 130:03}" if n % 7 else "",
            "usage": {"input_tokens": 100 + n, "output_tokens": n % 50},
        }
        for n in range(600)
    ]
    assert events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw).accepted
    keyless = [{**raw[n], "event_id": f"keyless-{n}", "project": "chatbot"} for n in range(0, 600, 3)]
    owner = IngestScope(kind="user", user=world.users["alpha_owner"])
    assert events_ingest(scope=owner, raw_events=keyless).accepted == len(keyless)
    client = _client(world, "alpha_owner")
    for group in ("end_user", "feature", "api_key", "model", "project"):
        page = client.get("/t/alpha/usage/", {"preset": "7d", "group_by": group})
        rows, more, totals = page.context["rows"], page.context["more"], page.context["totals"]
        if group == "end_user":
            assert len(rows) == TABLE_ROWS and more["count"] == 131 - TABLE_ROWS  # 130 users and the anonymous
            assert "31 others" in page.content.decode()
        else:
            assert more is None
        for name in ("requests", "input_tokens", "output_tokens", "cost"):
            assert sum(row[name] for row in rows) + (more[name] if more else 0) == totals[name], (group, name)
        costs = [row["cost"] for row in rows]
        assert costs == sorted(costs, reverse=True)
        stacked = page.context["stacked"]
        legend = {s["label"]: s["value"] for s in stacked["legend"]}
        named = {str(row[group] or "—"): row["cost"] for row in rows[:5]}
        assert {k: v for k, v in legend.items() if k != "Others"} == named, group
        assert legend.get("Others", Decimal(0)) == totals["cost"] - sum(named.values()), group
        assert sum(seg.value for seg in stacked["segments"]) == totals["cost"], group


def test_grouped_by_day_the_table_reads_by_date_latest_first(world, usage) -> None:  # noqa: F811
    from metering.services import IngestScope, events_ingest

    costly = {"input_tokens": 900_000, "output_tokens": 90_000}  # an older day that cost the most
    when = (timezone.now() - dt.timedelta(days=3)).isoformat()
    event = {"event_id": "old-peak", "timestamp": when, "model": "gpt-4o", "usage": costly}
    assert events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=[event]).accepted
    page = _client(world, "alpha_owner").get("/t/alpha/usage/", {"preset": "30d", "group_by": "day"})
    days = [row["day"] for row in page.context["rows"]]
    assert len(days) >= 3 and days == sorted(days, reverse=True)
    assert sum(row["cost"] for row in page.context["rows"]) == page.context["totals"]["cost"]
    charted = {bar.label: bar.value for bar in page.context["chart"]["bars"]}
    assert all(charted[row["day"]] == row["cost"] for row in page.context["rows"])  # the chart shows the same days


def test_the_stacked_chart_keeps_five_groups_and_sums_the_rest() -> None:
    from decimal import Decimal

    from metering.charts import stacked_chart

    days = ["2026-11-01", "2026-11-02"]
    values = {f"m{i}": {"2026-11-01": Decimal(i + 1)} for i in range(7)}
    values["m6"]["2026-11-02"] = Decimal("0.5")
    chart = stacked_chart(days, values, others_label="Others")
    labels = [s["label"] for s in chart["legend"]]
    assert labels == ["m6", "m5", "m4", "m3", "m2", "Others"]
    assert chart["legend"][-1]["value"] == Decimal(3)  # m0 (1) + m1 (2)
    assert sum(s.value for s in chart["segments"]) == sum(sum(v.values()) for v in values.values())
    assert max(s.y for s in chart["segments"]) < chart["plot_height"]


def test_the_explorer_filters_by_department_environment_and_key(world, usage) -> None:  # noqa: F811
    client = _client(world, "alpha_owner")
    html = client.get("/t/alpha/usage/", {"preset": "7d"}).content.decode()
    assert 'name="department"' in html and 'name="api_key"' in html and 'value="production"' in html
    by_department = client.get("/t/alpha/usage/", {"preset": "7d", "department": world.alpha_department.code})
    assert by_department.context["totals"]["requests"] == 3  # the chatbot project's events
    by_key = client.get("/t/alpha/usage/", {"preset": "7d", "api_key": world.alpha_key.prefix})
    assert by_key.context["totals"]["requests"] == 3


def test_a_platform_admin_adds_a_price_for_an_unpriced_model_and_its_events_are_priced(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    from metering.models import ModelPrice
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    seen = timezone.now().replace(microsecond=0) - dt.timedelta(hours=2, seconds=17)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": f"house-{n}",
                "timestamp": iso(seen + dt.timedelta(minutes=n)),
                "model": "house-7b",
                "usage": {"input_tokens": 1000, "output_tokens": 500},
            }
            for n in range(3)
        ],
    )
    client = _client(world, "platform")
    queue = client.get("/staff/prices/unpriced/").content.decode()
    link = re.search(r'href="(/staff/prices/new/\?model=house-7b[^"]*)"', queue)
    assert link, queue
    form = client.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200
    start = form.context["form"].initial["effective_from"]
    assert start <= seen and seen - start < dt.timedelta(minutes=1)  # from its first event, to the minute
    assert form.context["form"].initial["model"] == "house-7b"

    body = {
        "provider": "house",
        "model": "house-7b",
        "aliases": "house-7b-*, House 7B",
        "effective_from": timezone.localtime(start).strftime("%Y-%m-%dT%H:%M"),
        "input": "0.5",
        "output": "1.5",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/staff/prices/new/", body)
    assert response.status_code == 302 and response["Location"] == "/staff/prices/?q=house-7b&current=0"
    price = ModelPrice.objects.get(model="house-7b")
    assert (price.provider, price.input, price.output, price.aliases) == ("house", 0.5, 1.5, ["house-7b-*", "House 7B"])
    assert price.effective_from == start and price.source == "manual"
    events = UsageEvent.objects.filter(event_id__startswith="house-")
    assert {e.rating_status for e in events} == {"priced"}
    # 1,000 × 0.5 + 500 × 1.5 = 1,250 per 10⁶
    assert {str(e.cost.normalize()) for e in events} == {"0.00125"}
    assert "<code>house-7b</code>" not in client.get("/staff/prices/unpriced/").content.decode()

    # the same start again is refused on the form, nothing stored
    again = client.post("/staff/prices/new/", body)
    assert again.status_code == 200 and "already has a price starting" in again.content.decode()
    assert ModelPrice.objects.filter(model="house-7b").count() == 1


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "garbage", "2026-11-02T08:00", "2026-W45-1T08:00:00Z"])
def test_a_price_form_from_a_moment_it_cannot_use_starts_now(world, since) -> None:  # type: ignore[no-untyped-def]
    form = _client(world, "platform").get("/staff/prices/new/", {"model": "house-7b", "from": since})
    assert form.status_code == 200
    assert abs(form.context["form"].initial["effective_from"] - timezone.now()) < dt.timedelta(minutes=2)
    assert form.context["form"].initial["model"] == "house-7b"


def test_a_changed_price_starts_from_the_one_in_force_and_closes_it(world, prices) -> None:
    from metering.models import ModelPrice

    client = _client(world, "platform")
    book = client.get("/staff/prices/", {"q": "gpt-4o"}).content.decode()
    assert 'href="/staff/prices/new/?model=gpt-4o&amp;provider=openai"' in book
    initial = client.get("/staff/prices/new/", {"model": "gpt-4o", "provider": "openai"}).context["form"].initial
    assert (initial["input"], initial["cached_input"], initial["output"]) == ("2.5", "1.25", "10")
    assert initial["aliases"] == "gpt-4o-2024-*"
    start = timezone.localtime(timezone.now() + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    response = client.post(
        "/staff/prices/new/",
        {
            "provider": "openai",
            "model": "gpt-4o",
            "aliases": initial["aliases"],
            "effective_from": start.strftime("%Y-%m-%dT%H:%M"),
            "input": "2",
            "cached_input": "1",
            "output": "8",
        },
    )
    assert response.status_code == 302
    old, new = ModelPrice.objects.filter(model="gpt-4o").order_by("effective_from")
    assert old.effective_to == start == new.effective_from and new.effective_to is None
    assert (old.input, new.input) == (2.5, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("input", "-1"), ("output", "abc"), ("input", "1.123456789"), ("model", ""), ("effective_from", "tomorrow")],
)
def test_a_price_with_a_bad_value_is_refused_on_the_form(world, prices, field: str, value: str) -> None:
    from metering.models import ModelPrice

    body = {"provider": "x", "model": "x-1", "effective_from": "2026-11-01T00:00", "input": "1", "output": "2"}
    response = _client(world, "platform").post("/staff/prices/new/", {**body, field: value})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not ModelPrice.objects.filter(model="x-1").exists()


def test_only_platform_admins_add_prices(world) -> None:
    for who in ("alpha_owner", "finance", "am"):
        assert _client(world, who).get("/staff/prices/new/").status_code == 403
        assert _client(world, who).post("/staff/prices/new/", {}).status_code == 403


def test_a_platform_admin_edits_a_prices_aliases_and_the_events_they_name_are_priced(
    world, prices, django_capture_on_commit_callbacks
) -> None:
    from metering.models import ModelPrice
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {
                "event_id": "snapshot-1",
                "timestamp": iso(timezone.now() - dt.timedelta(minutes=5)),
                "model": "gpt-4o-latest",
                "usage": {"input_tokens": 1000, "output_tokens": 100},
            }
        ],
    )
    assert UsageEvent.objects.get(event_id="snapshot-1").rating_status == "unpriced"
    price = prices["gpt-4o"]
    client = _client(world, "platform")
    book = client.get("/staff/prices/", {"q": "gpt-4o"}).content.decode()
    assert f'action="/staff/prices/{price.pk}/aliases/"' in book and 'value="gpt-4o-2024-*"' in book
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/staff/prices/{price.pk}/aliases/", {"aliases": "gpt-4o-2024-*, gpt-4o-latest, gpt-4o-latest"}
        )
    assert response.status_code == 302
    price.refresh_from_db()
    assert price.aliases == ["gpt-4o-2024-*", "gpt-4o-latest"]  # a name given twice is kept once
    event = UsageEvent.objects.get(event_id="snapshot-1")
    assert event.rating_status == "priced" and event.price_id == price.pk
    # 1,000 × 2.5 + 100 × 10 = 3,500 per 10⁶
    assert str(event.cost.normalize()) == "0.0035"
    # an alias too long is refused, the row unchanged; tenant users cannot reach it
    page = client.post(f"/staff/prices/{price.pk}/aliases/", {"aliases": "x" * 201}, follow=True).content.decode()
    assert "at most 200 characters" in page
    assert ModelPrice.objects.get(pk=price.pk).aliases == ["gpt-4o-2024-*", "gpt-4o-latest"]
    assert _client(world, "alpha_owner").post(f"/staff/prices/{price.pk}/aliases/", {"aliases": ""}).status_code == 403


def test_a_long_unpriced_queue_is_paged(world, prices) -> None:
    """Clients name models freely: a sender putting a request id in `model` must not make the queue one endless
    page (nor the price book count it by reading it whole)."""
    from django.utils import timezone

    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    when = iso(timezone.now())
    events = [
        {"event_id": f"junk-{n}", "timestamp": when, "model": f"junk-model-{n:03d}", "usage": {"input_tokens": 1}}
        for n in range(60)
    ]
    events += [{"event_id": "busy-2", "timestamp": when, "model": "junk-model-007", "usage": {"input_tokens": 1}}]
    assert (
        events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=events).unpriced == 61
    )
    client = _client(world, "platform")
    first = client.get("/staff/prices/unpriced/")
    listed = [m["model"] for m in first.context["models"]]
    assert len(listed) == 50 and listed[0] == "junk-model-007"  # the most events first
    assert "Page 1 of 2" in first.content.decode()
    assert len(client.get("/staff/prices/unpriced/", {"page": 2}).context["models"]) == 10
    assert client.get("/staff/prices/").context["unpriced_count"] == 60


def test_an_event_is_found_by_its_id_whenever_it_happened(world, prices) -> None:
    """Support asks "did event X arrive?": the id finds it outside the period on screen, among the projects the
    person sees only."""
    from django.utils import timezone

    from metering.services import IngestScope, events_ingest
    from tests.factories import api_key_for
    from tests.metering.conftest import iso

    other_key, _secret = api_key_for(world.alpha_other_project)
    old = iso(timezone.now() - dt.timedelta(days=33))  # before the default 30 days
    for key, event_id in ((world.alpha_key, "gw-2026-000417"), (other_key, "other-project-1")):
        events = [{"event_id": event_id, "timestamp": old, "model": "gpt-4o", "usage": {"input_tokens": 7}}]
        assert events_ingest(scope=IngestScope(kind="project_key", api_key=key), raw_events=events).accepted == 1
    owner = _client(world, "alpha_owner")
    assert "gw-2026-000417" not in owner.get("/t/alpha/usage/events/").content.decode()
    found = owner.get("/t/alpha/usage/events/", {"event_id": " gw-2026-000417 "})
    assert [e.event_id for e in found.context["page"].object_list] == ["gw-2026-000417"]
    assert "whenever they happened" in found.content.decode()
    developer = _client(world, "alpha_dev")  # sees the chatbot project only
    assert [
        e.event_id
        for e in developer.get("/t/alpha/usage/events/", {"event_id": "gw-2026-000417"}).context["page"].object_list
    ] == ["gw-2026-000417"]
    hidden = developer.get("/t/alpha/usage/events/", {"event_id": "other-project-1"})
    assert not hidden.context["page"].object_list and "No event with this id" in hidden.content.decode()
    assert (
        not _client(world, "bravo_owner")
        .get("/t/bravo/usage/events/", {"event_id": "gw-2026-000417"})
        .context["page"]
        .object_list
    )


def test_the_events_pages_go_older_and_newer_keeping_the_filters(world, usage) -> None:  # noqa: F811
    """Pages go by position, not by number (no count or offset over the tenant's events): Older, then Newer back."""
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    now = timezone.now()
    raw = [
        {
            "event_id": f"many-{n:03}",
            "timestamp": iso(now - dt.timedelta(minutes=5, seconds=n // 2)),  # pairs share a moment
            "model": "gpt-4o",
            "feature": "paged",
            "usage": {"input_tokens": 1},
        }
        for n in range(120)
    ]
    assert events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw).accepted == 120
    client = _client(world, "alpha_owner")

    def follow(html: str, label: str):  # type: ignore[no-untyped-def]
        link = re.search(rf'<a href="([^"]*)">{label}</a>', html)
        assert link is not None, label
        assert "feature=paged" in link.group(1) and "preset=7d" in link.group(1)
        return client.get("/t/alpha/usage/events/" + link.group(1).replace("&amp;", "&"))

    first = client.get("/t/alpha/usage/events/", {"preset": "7d", "feature": "paged"})
    html = first.content.decode()
    assert "120 events" in html and ">Newer</a>" not in html
    pages = [[e.event_id for e in first.context["page"].object_list]]
    while ">Older</a>" in html:
        response = follow(html, "Older")
        html = response.content.decode()
        pages.append([e.event_id for e in response.context["page"].object_list])
    assert [len(p) for p in pages] == [50, 50, 20]
    newest_first = UsageEvent.objects.filter(feature="paged").order_by("-occurred_at", "-id")
    assert [i for p in pages for i in p] == [e.event_id for e in newest_first]  # each once, in order
    back = follow(html, "Newer")
    assert [e.event_id for e in back.context["page"].object_list] == pages[1]
    assert [e.event_id for e in follow(back.content.decode(), "Newer").context["page"].object_list] == pages[0]
    newest = [e.event_id for e in newest_first[:50]]
    for position in ("not-a-position", "2000-01-01T00:00:00+00:00_1"):  # nonsense, or nothing older than it
        listed = client.get("/t/alpha/usage/events/", {"preset": "7d", "feature": "paged", "older": position})
        assert [e.event_id for e in listed.context["page"].object_list] == newest


@pytest.mark.parametrize(("zone_name", "extra"), [("UTC", dt.timedelta()), ("Asia/Kolkata", dt.timedelta(hours=2))])
def test_an_end_users_stretches_are_their_days_and_the_hours_across_their_midnights(
    world, prices, zone_name, extra
) -> None:
    """An end user's events are looked for in their local days only — and, in a zone half an hour off UTC, in the
    hour that began the evening before each of them (it holds the day's first half hour) — not in the whole day
    before each: a user seen on two days among six busy ones is two days of reading, not four."""
    from metering.selectors import UsageQuery, events_for, events_page, matching_spans
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    world.alpha.timezone = zone_name
    world.alpha.save()
    zone = zoneinfo.ZoneInfo(zone_name)
    today = timezone.now().astimezone(zone).date()
    first = dt.datetime.combine(today - dt.timedelta(days=6), dt.time(), tzinfo=zone)
    raw = [
        {
            "event_id": f"busy-{n}",
            "timestamp": iso(first + dt.timedelta(minutes=5 + 30 * n)),
            "model": "gpt-4o",
            "end_user": "owl" if (n // 48) in (1, 4) and n % 7 == 0 else "crowd",
            "usage": {"input_tokens": 1},
        }
        for n in range(6 * 48)
    ]
    assert events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw).accepted
    query = UsageQuery(world.alpha, today - dt.timedelta(days=6), today, [], {"end_user": "owl"})
    spans = matching_spans(query)
    assert spans is not None and sum((b - a for a, b in spans), dt.timedelta()) == dt.timedelta(days=2) + extra
    events = events_for(query).order_by("-occurred_at", "-id")
    found = [e.event_id for e in events_page(events, older=None, newer=None, size=100, spans=spans).object_list]
    assert found == [e.event_id for e in events] and len(found) == 14


def test_filtered_pages_read_only_the_hours_that_hold_a_match_and_give_the_same_events(world, prices) -> None:
    """With filters, the events page reads only the hours (and, for an end user, the days) that the rollups say
    hold a match — a rare end user no longer walks every event of the period — and pages through exactly what the
    plain walk gives, both ways. Alpha half an hour off UTC: an hour's rollup starts on one local day and ends on
    the next, and an end user's first call of a day can lie in an hour that began the day before."""
    from metering.selectors import UsageQuery, events_for, events_page, matching_spans
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    world.alpha.timezone = "Asia/Kolkata"
    world.alpha.save()
    zone = zoneinfo.ZoneInfo("Asia/Kolkata")
    midnight = timezone.now().astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    raw = []
    for n in range(90):  # over three local days, every 47 minutes, with calls at 00:10 local of each day
        when = midnight - dt.timedelta(days=2) + dt.timedelta(minutes=10 + 47 * n)
        raw.append(
            {
                "event_id": f"walk-{n:03}",
                "timestamp": iso(min(when, timezone.now() - dt.timedelta(minutes=1))),
                "model": "gpt-4o",
                "feature": "rare" if n % 11 == 0 else "common",
                "end_user": "night-owl" if n in (0, 31, 62) else f"u{n % 5}",
                "usage": {"input_tokens": 1 + n},
            }
        )
    for day in range(3):  # the night owl's first call of a day, ten minutes after local midnight
        raw.append(
            {
                "event_id": f"owl-{day}",
                "timestamp": iso(midnight - dt.timedelta(days=day) + dt.timedelta(minutes=10)),
                "model": "gpt-4o",
                "end_user": "night-owl",
                "usage": {"input_tokens": 1},
            }
        )
    scope = IngestScope(kind="project_key", api_key=world.alpha_key)
    assert events_ingest(scope=scope, raw_events=raw).accepted == len(raw)
    today = timezone.now().astimezone(zone).date()

    def walk(query, spans, size=4):  # type: ignore[no-untyped-def]
        events = events_for(query).order_by("-occurred_at", "-id")
        pages = [events_page(events, older=None, newer=None, size=size, spans=spans)]
        while pages[-1].older:
            pages.append(events_page(events, older=pages[-1].older, newer=None, size=size, spans=spans))
        back = [pages[-1]]
        while back[-1].newer:
            back.append(events_page(events, older=None, newer=back[-1].newer, size=size, spans=spans))
        return [[e.event_id for e in p.object_list] for p in pages], [[e.event_id for e in p.object_list] for p in back]

    for filters in ({"end_user": "night-owl"}, {"feature": "rare"}, {"end_user": "u1", "feature": "common"}, {}):
        for start in (today - dt.timedelta(days=2), today - dt.timedelta(days=1), today):
            query = UsageQuery(world.alpha, start, today, [], filters)
            spans = matching_spans(query)
            assert walk(query, spans) == walk(query, None), (filters, start)
            expected = events_for(query).count()
            assert sum(len(p) for p in walk(query, spans)[0]) == expected
    owl = matching_spans(UsageQuery(world.alpha, today - dt.timedelta(days=2), today, [], {"end_user": "night-owl"}))
    assert owl is not None and sum((stop - start for start, stop in owl), dt.timedelta()) <= dt.timedelta(days=3)
    rare = matching_spans(UsageQuery(world.alpha, today - dt.timedelta(days=2), today, [], {"feature": "rare"}))
    assert rare is not None and len(rare) <= 9 and all(stop - start == dt.timedelta(hours=1) for start, stop in rare)
    assert matching_spans(UsageQuery(world.alpha, today, today, [], {})) is None
