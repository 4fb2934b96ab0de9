"""Cost optimisation suggestions from a month of usage, with the saving of each worked out by hand
(Alpha pays book prices: no contract)."""

import datetime as dt
from decimal import Decimal

import pytest

from metering.insights import suggestions
from metering.services import IngestScope, events_ingest
from tests.factories import api_key_for
from tests.metering.conftest import add_price

pytestmark = pytest.mark.django_db

OCT = dt.date(2026, 10, 1)
WHEN = dt.datetime(2026, 10, 15, 4, tzinfo=dt.UTC)


def send(key, prefix, count, *, template="", feature="", model="gpt-4o", **usage):  # type: ignore[no-untyped-def]
    events = [
        {
            "event_id": f"{prefix}-{n}",
            "timestamp": (WHEN + dt.timedelta(minutes=n)).isoformat(),
            "model": model,
            "feature": feature,
            "prompt_template": template,
            "usage": usage,
        }
        for n in range(count)
    ]
    result = events_ingest(
        scope=IngestScope(kind="project_key", api_key=key), raw_events=events, now=WHEN + dt.timedelta(days=1)
    )
    assert result.accepted == count, result.rejected


@pytest.fixture
def month(world, prices):  # type: ignore[no-untyped-def]
    add_price("gpt-4o-mini", input="0.15", cached_input="0.075", output="0.6")
    research_key, _ = api_key_for(world.alpha_other_project)
    # 30 big RAG calls on gpt-4o: 100,000 in + 10,000 out = 0.35 USD each, 10.50 in all (research project).
    send(research_key, "rag", 30, template="rag-v1", feature="chat", input_tokens=100_000, output_tokens=10_000)
    # 40 small FAQ calls in two templates: 1,000 in + 100 out = 0.0035 USD each (chatbot project).
    send(world.alpha_key, "fa", 20, template="faq-a", feature="faq", input_tokens=1000, output_tokens=100)
    send(world.alpha_key, "fb", 20, template="faq-b", feature="faq", input_tokens=1000, output_tokens=100)
    # Claude has no cheaper Anthropic model in this price book.
    send(world.alpha_key, "cl", 25, feature="draft", model="claude-sonnet-4", input_tokens=50_000, output_tokens=5000)


def by_kind(found):  # type: ignore[no-untyped-def]
    return {(s.kind, s.feature or s.prompt_template): s for s in found}


def test_each_suggestion_with_its_saving(world, month) -> None:
    found = by_kind(suggestions(world.alpha, OCT, use_cache=False))
    assert set(found) == {("model", "chat"), ("caching", "rag-v1"), ("outlier", "rag-v1")}

    move = found[("model", "chat")]
    assert (move.model, move.suggested_model, move.requests) == ("gpt-4o", "gpt-4o-mini", 30)
    # 30 × (100,000 × 0.15 + 10,000 × 0.6) / 1M = 30 × 0.021 = 0.63
    assert (move.current_cost, move.projected_cost, move.saving) == (Decimal("10.5"), Decimal("0.63"), Decimal("9.87"))
    assert move.saving_percent == Decimal("94.0")

    caching = found[("caching", "rag-v1")]
    # half of 3,000,000 uncached input tokens, less the first call: 1,450,000 × (2.50 − 1.25) / 1M = 1.8125
    assert caching.saving == Decimal("1.8125")
    assert caching.details["average_prompt_tokens"] == 100_000 and caching.details["cached_share_percent"] == "0.0"

    outlier = found[("outlier", "rag-v1")]
    # 110,000 tokens per call against a typical 1,100 (median of 110,000 / 1,100 / 1,100): trimmed to typical,
    # the month costs 10.50 × 1,100 / 110,000 = 0.105
    assert outlier.details["tokens_per_request"] == 110_000 and outlier.details["typical_tokens_per_request"] == 1100
    assert outlier.saving == Decimal("10.395")
    assert [s.kind for s in suggestions(world.alpha, OCT, use_cache=False)] == ["outlier", "model", "caching"]


def test_small_savings_and_models_without_a_cheaper_sibling_say_nothing(world, month) -> None:
    kinds = by_kind(suggestions(world.alpha, OCT, use_cache=False))
    # The FAQ feature would save 40 × (0.0035 − 0.00021) = 0.1316 USD: below the threshold.
    assert ("model", "faq") not in kinds and ("caching", "faq-a") not in kinds  # 1,000-token prompts: too small
    assert ("model", "draft") not in kinds


def test_a_snapshot_or_a_routed_name_is_moved_as_its_book_model(world, prices) -> None:
    from metering.models import ModelPrice
    from metering.pricebook import price_book_changed

    add_price("gpt-4o-mini", input="0.15", cached_input="0.075", output="0.6")
    ModelPrice.objects.filter(model="gpt-4o").update(aliases=["gpt-4o-2024-*"])
    price_book_changed()
    send(world.alpha_key, "snap", 30, feature="chat", model="gpt-4o-2024-08-06", input_tokens=100_000)
    send(world.alpha_key, "routed", 30, feature="search", model="openai/gpt-4o", input_tokens=100_000)
    found = by_kind(suggestions(world.alpha, OCT, use_cache=False))
    moves = {key: (s.model, s.suggested_model, s.saving) for key, s in found.items() if key[0] == "model"}
    # 30 × 100,000 × (2.50 − 0.15) / 1M = 7.05 each
    assert moves == {
        ("model", "chat"): ("gpt-4o-2024-08-06", "gpt-4o-mini", Decimal("7.05")),
        ("model", "search"): ("openai/gpt-4o", "gpt-4o-mini", Decimal("7.05")),
    }


def test_another_month_is_empty(world, month) -> None:
    assert suggestions(world.alpha, dt.date(2026, 9, 1), use_cache=False) == []


def test_the_api_answers_last_month_by_default_and_a_developer_sees_their_projects(world, month) -> None:
    response = world.client("alpha_owner").get("/api/v1/insights", {"period": "2026-10"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == "2026-10" and body["currency"] == "USD"
    assert body["total_saving"] == "22.0775"  # 10.395 + 9.87 + 1.8125
    assert body["suggestions"][0] == {
        "kind": "outlier",
        "model": "gpt-4o",
        "requests": 30,
        "current_cost": "10.5000",
        "projected_cost": "0.1050",
        "feature": "",
        "prompt_template": "rag-v1",
        "suggested_model": "",
        "details": {"tokens_per_request": 110000, "typical_tokens_per_request": 1100, "ratio": "100.0"},
        "saving": "10.3950",
        "saving_percent": "99.0",
    }
    developer = world.client("alpha_dev").get("/api/v1/insights", {"period": "2026-10"}).json()
    assert developer["suggestions"] == []  # the RAG calls are in the research project
    for wrong in ("2026-13", "9999-12", "0001-01", "2026-1x", "2026-W45", "202610"):
        bad = world.client("alpha_owner").get("/api/v1/insights", {"period": wrong})
        assert bad.status_code == 400 and "period" in bad.json()["error"]["fields"], wrong
    assert world.client("alpha_owner").get("/api/v1/insights").status_code == 200


def test_the_tenants_own_downgrade_map_is_preferred_and_reasoning_models_are_not_offered(world, month) -> None:
    # o3 is cheaper than gpt-4o per token but prices hidden reasoning apart: never the suggestion.
    assert by_kind(suggestions(world.alpha, OCT, use_cache=False))[("model", "chat")].suggested_model != "o3"
    add_price("gpt-3.5-turbo", input="0.5", output="1.5")
    budget = world.alpha_budget
    budget.downgrade_map = {"gpt-4o": "gpt-3.5-turbo"}
    budget.save()
    move = by_kind(suggestions(world.alpha, OCT, use_cache=False))[("model", "chat")]
    assert move.suggested_model == "gpt-3.5-turbo"
    assert move.projected_cost == Decimal(30) * (100_000 * Decimal("0.5") + 10_000 * Decimal("1.5")) / 1_000_000


def test_the_insights_page(world, month) -> None:
    page = world.portal("alpha_owner").get("/t/alpha/insights/", {"period": f"{OCT:%Y-%m}"})
    assert page.status_code == 200
    html = page.content.decode()
    assert page.context["period"] == OCT
    assert "gpt-4o-mini" in html and "22.08 USD" in html and "rag-v1" in html
    developer = world.portal("alpha_dev").get("/t/alpha/insights/", {"period": f"{OCT:%Y-%m}"})
    assert developer.status_code == 200 and developer.context["suggestions"] == []
    assert "Nothing to suggest" in developer.content.decode()


def test_a_past_months_suggestions_read_its_events_once_until_its_usage_or_prices_change(world, month) -> None:
    """Last month — the page's default — is read from the events once, then kept until a late event, a correction,
    a re-rating, a price or the tenant's downgrades change it: a large tenant does not wait seconds every hour."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    november = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)

    def read() -> tuple[list, bool]:  # the suggestions, and whether the events were read for them
        with CaptureQueriesContext(connection) as captured:
            found = suggestions(world.alpha, OCT, now=november)
        return found, any("metering_usageevent" in q["sql"] for q in captured.captured_queries)

    first, read_events = read()
    assert read_events and first
    assert read() == (first, False)
    # Late October events: 30 calls of a new feature and template, big enough for suggestions of their own.
    send(world.alpha_key, "late", 30, template="faq-c", feature="faq2", input_tokens=50_000, output_tokens=1000)
    after_late, read_events = read()
    new = by_kind(after_late).keys() - by_kind(first).keys()
    assert read_events and new == {("model", "faq2"), ("caching", "faq-c")}
    assert read() == (after_late, False)
    from metering.prices import price_add

    price_add(  # gpt-4o-mini cheaper from October 2: another saving
        actor=None,
        provider="openai",
        model="gpt-4o-mini",
        prices={"input": Decimal("0.1"), "cached_input": Decimal("0.05"), "output": Decimal("0.4")},
        effective_from=dt.datetime(2026, 10, 2, tzinfo=dt.UTC),
        rerate=False,
    )
    repriced, read_events = read()
    assert (
        read_events
        and by_kind(repriced)[("model", "chat")].projected_cost != by_kind(after_late)[("model", "chat")].projected_cost
    )
    # The open month is kept an hour, as before, whatever changes.
    assert suggestions(world.alpha, OCT, now=dt.datetime(2026, 10, 20, tzinfo=dt.UTC)) == repriced
