"""The tenant dashboard: month-to-date spend, forecast and budgets for those who see billing; breakdowns with
drill-down links; a developer sees only their projects' usage, in USD, without bills or budgets."""

import datetime as dt

import pytest
from django.utils import timezone

from billing.budgets import budget_create
from metering.services import IngestScope, events_ingest
from tests.factories import api_key_for
from tests.metering.conftest import prices  # noqa: F401  (the price-book fixture)

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_spend_budgets_and_breakdowns(world, prices, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    budget_create(actor=None, tenant=world.alpha, name="Alpha cap", scope="tenant", period="month", limit_amount=10)
    research_key, _secret = api_key_for(world.alpha_other_project)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[
                {
                    "event_id": "d1",
                    "timestamp": (now - dt.timedelta(minutes=2)).isoformat(),
                    "model": "gpt-4o",
                    "feature": "chat",
                    "end_user": "u-1",
                    "usage": {"input_tokens": 1_000_000},
                }
            ],
        )
    with django_capture_on_commit_callbacks(execute=True):  # each ingest commits (and counts) on its own
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=research_key),
            raw_events=[
                {
                    "event_id": "d2",
                    "timestamp": (now - dt.timedelta(minutes=2)).isoformat(),
                    "model": "o3",
                    "feature": "agents",
                    "usage": {"input_tokens": 500_000},
                }
            ],
        )
    page = world.portal("alpha_member").get("/t/alpha/").content.decode()
    # 1,000,000 × 2.5 + 500,000 × 2 = 3.50 USD
    assert "Month to date" in page and "$3.50" in page and "Month-end forecast" in page
    assert "Alpha cap" in page and "35%" in page
    assert "By model" in page and "gpt-4o" in page and "?preset=mtd&amp;model=gpt-4o" in page
    assert "model=o3" in page
    assert "Last 30 days" in page and "<svg" in page
    developer = world.portal("alpha_dev").get("/t/alpha/").content.decode()
    # Only the chatbot project (matched as a link and a cell: random tokens in the page may spell "o3").
    assert "$2.50" in developer and "model=gpt-4o" in developer
    assert "model=o3" not in developer and ">o3<" not in developer
    assert "Alpha cap" not in developer and "Month-end forecast" not in developer


def test_a_budget_runs_out_on_a_day_of_the_tenants_calendar() -> None:
    import zoneinfo
    from decimal import Decimal
    from types import SimpleNamespace

    from metering.dashboard import _exhaustion

    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    now = dt.datetime(2026, 11, 10, 16, tzinfo=dt.UTC)  # midnight of 11 November in Shanghai: ten days gone

    def budget(spent: str) -> SimpleNamespace:
        return SimpleNamespace(
            limit=Decimal(100),
            spent=Decimal(spent),
            period_start=dt.date(2026, 11, 1),
            period_end=dt.date(2026, 11, 30),
        )

    # 40 in ten days: 4 a day, the other 60 last 15 days — to midnight of 26 November in Shanghai (25th in UTC).
    assert _exhaustion(budget("40"), now, shanghai) == dt.date(2026, 11, 26)
    assert _exhaustion(budget("10"), now, shanghai) is None  # 1 a day lasts beyond the month
    assert _exhaustion(budget("100"), now, shanghai) is None  # already used up: the page says so


def test_a_used_up_budget_says_so_on_the_dashboard(world, prices, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    budget_create(actor=None, tenant=world.alpha, name="Tiny cap", scope="tenant", period="month", limit_amount=1)
    with django_capture_on_commit_callbacks(execute=True):
        events_ingest(
            scope=IngestScope(kind="project_key", api_key=world.alpha_key),
            raw_events=[
                {
                    "event_id": "u1",
                    "timestamp": (timezone.now() - dt.timedelta(minutes=2)).isoformat(),
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 1_000_000},
                }
            ],
        )
    page = world.portal("alpha_member").get("/t/alpha/").content.decode()
    assert "Tiny cap" in page and "250%" in page and "Used up" in page


def test_the_month_to_date_call_count_is_grouped_by_thousands(world, prices) -> None:  # noqa: F811
    now = timezone.now() - dt.timedelta(minutes=2)
    raw = [
        {"event_id": f"c-{n}", "timestamp": now.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": 10}}
        for n in range(1001)
    ]
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw[:1000])
    events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=raw[1000:])
    page = world.portal("alpha_member").get("/t/alpha/").content.decode()
    assert "1,001 calls" in page


def test_an_internal_tenant_is_told_its_usage_is_metered_but_never_billed(world, prices) -> None:  # noqa: F811
    world.alpha.is_internal = True
    world.alpha.legal_name = ""
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    now = timezone.now() - dt.timedelta(minutes=2)
    events_ingest(
        scope=IngestScope(kind="project_key", api_key=world.alpha_key),
        raw_events=[
            {"event_id": "i-1", "timestamp": now.isoformat(), "model": "gpt-4o", "usage": {"input_tokens": 10**6}}
        ],
    )
    page = world.portal("alpha_owner").get("/t/alpha/").content.decode()
    # 1,000,000 × 2.5 = 2.50 USD metered; the bill is nothing
    assert "Internal: metered ($2.50 at contract prices) but never billed" in page
    head = page[page.index('<div class="page-head">') : page.index("</div>", page.index('<div class="page-head">'))]
    assert "· <span" not in head  # no separator before the badge when there is no legal name
