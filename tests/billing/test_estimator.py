"""The cost estimator: traffic and a model mix → the month's tokens and bill at the tenant's own terms,
checked against arithmetic written out by hand; clear errors for bad input."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.contracts import contract_activate, contract_create
from billing.estimator import EstimateInvalid, estimate, traffic_parse
from billing.models import FxRate

pytestmark = pytest.mark.django_db

BODY = {
    "requests_per_day": 100,
    "days": 30,
    "input_tokens": 1000,
    "cached_input_tokens": 200,
    "output_tokens": 300,
    "mix": [{"model": "gpt-4o", "share": 60}, {"model": "claude-sonnet-4", "share": 40}],
}


@pytest.fixture
def cny_terms(world, prices):  # type: ignore[no-untyped-def]
    contract = contract_create(
        actor=None,
        tenant=world.alpha,
        starts_on=dt.date(2026, 1, 1),
        billing_currency="CNY",
        markup_percent=Decimal(10),
        discount_percent=Decimal(5),
        tax_percent=Decimal(6),
        tax_label="增值税 6%",
        rate_overrides=[{"model": "claude-sonnet-4", "input": "2", "output": "10"}],
    )
    contract_activate(actor=None, contract=contract)
    FxRate.objects.create(
        base="USD", quote="CNY", date=timezone.now().date() - dt.timedelta(days=2), rate=Decimal("7.1"), source="ecb"
    )


def test_the_month_at_the_tenants_terms_by_hand(world, cny_terms) -> None:
    result = estimate(world.alpha, traffic_parse(BODY))
    # 3,000 requests: gpt-4o 1,800 at book × 1.10 markup; claude-sonnet-4 1,200 at the override (no markup,
    # cached input falls back to the override's input price).
    gpt, claude = result.models
    assert (gpt.requests, claude.requests) == (1800, 1200)
    assert gpt.tokens == {"input": 1_800_000, "cached_input": 360_000, "output": 540_000, "reasoning": 0}
    assert gpt.cost_usd == Decimal("4.95") + Decimal("0.495") + Decimal("5.94")
    assert claude.cost_usd == Decimal("2.4") + Decimal("0.48") + Decimal("3.6")
    amounts = [(line.model, line.bucket, line.amount) for line in result.totals.lines if line.kind == "usage"]
    assert amounts == [
        ("claude-sonnet-4", "input", Decimal("17.04")),  # 2.4 × 7.1
        ("claude-sonnet-4", "cached_input", Decimal("3.41")),  # 0.48 × 7.1 = 3.408
        ("claude-sonnet-4", "output", Decimal("25.56")),
        ("gpt-4o", "input", Decimal("35.15")),  # 4.95 × 7.1 = 35.145, half up
        ("gpt-4o", "cached_input", Decimal("3.51")),  # 0.495 × 7.1 = 3.5145
        ("gpt-4o", "output", Decimal("42.17")),  # 5.94 × 7.1 = 42.174
    ]
    assert result.totals.usage_subtotal == Decimal("126.84")
    assert result.totals.net == Decimal("120.50")  # − 5 % discount (6.342 → 6.34)
    assert result.totals.tax == Decimal("7.23")  # 6 % of 120.50 = 7.23
    assert result.totals.total == Decimal("127.73")
    assert result.tokens["total"] == 3_000 * 1_500


def test_the_api_answers_in_the_tenants_currency_with_tax(world, cny_terms) -> None:
    response = world.client("alpha_owner").post("/api/v1/estimate", BODY, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["tenant"], data["currency"], data["fx_rate"], data["tax_label"]) == (
        "alpha",
        "CNY",
        "7.100000",
        "增值税 6%",
    )
    assert (data["usage_subtotal"], data["net"], data["tax"], data["total"]) == ("126.84", "120.50", "7.23", "127.73")
    assert data["requests"] == 3000 and [m["model"] for m in data["models"]] == ["gpt-4o", "claude-sonnet-4"]
    assert data["models"][1]["prices_per_million_usd"]["input"] == "2"


def test_requests_per_second_is_a_day_of_seconds(world, cny_terms) -> None:
    per_second = traffic_parse(
        dict({k: v for k, v in BODY.items() if k != "requests_per_day"}, requests_per_second="2")
    )
    assert per_second.requests_per_day == 172_800


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mix": [{"model": "gpt-4o", "share": 60}]}, "mix"),  # shares add up to 60
        ({"mix": []}, "mix"),
        ({"mix": [{"model": "gpt-4o", "share": "abc"}]}, "mix[0]"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"input_tokens": 1.5}, "input_tokens"),
        ({"output_tokens": None}, "output_tokens"),
        ({"reasoning_tokens": 400}, "reasoning_tokens"),
        ({"requests_per_day": None}, "requests_per_day"),
        ({"requests_per_second": 1}, "requests_per_day"),  # both given
        ({"days": 0}, "days"),
    ],
)
def test_bad_input_is_named_by_field(world, cny_terms, change, field) -> None:  # type: ignore[no-untyped-def]
    body = {k: v for k, v in dict(BODY, **change).items() if v is not None}
    with pytest.raises(EstimateInvalid) as raised:
        traffic_parse(body)
    assert field in raised.value.fields
    response = world.client("alpha_owner").post("/api/v1/estimate", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_an_unknown_model_is_422_with_its_name(world, cny_terms) -> None:
    body = dict(BODY, mix=[{"model": "gpt-9-imaginary", "share": 100}])
    response = world.client("alpha_owner").post("/api/v1/estimate", body, format="json")
    assert response.status_code == 422
    assert (
        response.json()["error"]["code"] == "unpriced_model"
        and "gpt-9-imaginary" in response.json()["error"]["message"]
    )


def test_developers_and_outsiders_do_not_see_contract_prices(world, cny_terms) -> None:
    assert (
        world.client("alpha_dev").post("/api/v1/estimate", dict(BODY, tenant="alpha"), format="json").status_code == 403
    )
    assert (
        world.client("bravo_owner").post("/api/v1/estimate", dict(BODY, tenant="alpha"), format="json").status_code
        == 404
    )


def test_the_estimator_page_shows_the_same_month(world, cny_terms) -> None:
    portal = world.portal("alpha_owner")
    empty = portal.get("/t/alpha/estimate/")
    assert empty.status_code == 200 and empty.context["result"] is None
    assert "gpt-4o" in empty.context["models"] and empty.context["rows"][0]["share"] == "100"
    query = {
        "requests": "100",
        "unit": "day",
        "days": "30",
        "input_tokens": "1000",
        "cached_input_tokens": "200",
        "output_tokens": "300",
        "reasoning_tokens": "0",
        "model_0": "gpt-4o",
        "share_0": "60",
        "model_1": "claude-sonnet-4",
        "share_1": "40",
    }
    page = portal.get("/t/alpha/estimate/", query)
    assert page.context["result"].totals.total == Decimal("127.73")
    html = page.content.decode()
    assert "127.73" in html and "增值税 6%" in html
    wrong = portal.get("/t/alpha/estimate/", dict(query, share_1="30"))
    assert wrong.context["result"] is None and "add up to 90" in wrong.content.decode()
    assert world.portal("alpha_dev").get("/t/alpha/estimate/").status_code == 403


def test_the_estimator_starts_from_the_tenants_own_last_30_days(world, cny_terms) -> None:
    """A first visit is filled in from the tenant's traffic: requests per day, average tokens per request and the
    model mix by requests in whole percents adding up to 100 — a dated snapshot counted as its book model."""
    from metering.models import ModelPrice
    from metering.pricebook import price_book_changed
    from metering.services import IngestScope, events_ingest
    from tests.metering.conftest import iso

    ModelPrice.objects.filter(model="gpt-4o").update(aliases=["gpt-4o-2024-*"])
    price_book_changed()
    when = iso(timezone.now() - dt.timedelta(hours=2))
    sent = [
        ("gpt-4o", 2),
        ("gpt-4o-2024-08-06", 1),
        ("claude-sonnet-4", 2),
        ("o3", 1),
        ("unknown-model", 3),  # no price: not offered in the mix
    ]
    events = [
        {
            "event_id": f"{model}-{n}",
            "timestamp": when,
            "model": model,
            "usage": {"input_tokens": 1000, "cache_read_input_tokens": 300, "output_tokens": 200}
            if model.startswith("claude")
            else {"prompt_tokens": 1000, "completion_tokens": 200},
        }
        for model, count in sent
        for n in range(count)
    ]
    result = events_ingest(scope=IngestScope(kind="project_key", api_key=world.alpha_key), raw_events=events)
    assert result.accepted == 9
    page = world.portal("alpha_owner").get("/t/alpha/estimate/")
    assert page.context["result"] is None and page.context["prefilled"] is not None
    params = page.context["params"]
    # 6 priced requests over 30 days; per request: input (1000 × 4 + 1000 × 2) / 6, cached 600 / 6, output 200
    assert (params["requests"], params["days"], params["unit"]) == ("1", "30", "day")
    assert (params["input_tokens"], params["cached_input_tokens"], params["output_tokens"]) == ("1000", "100", "200")
    assert params["reasoning_tokens"] == "0"
    # gpt-4o 3 of 6 = 50 %, claude-sonnet-4 2 of 6 = 33.3 %, o3 1 of 6 = 16.7 %: 50 + 33 + 17
    assert [(r["model"], r["share"]) for r in page.context["rows"] if r["model"]] == [
        ("gpt-4o", "50"),
        ("claude-sonnet-4", "33"),
        ("o3", "17"),
    ]
    assert "Filled in from your own traffic" in page.content.decode()
