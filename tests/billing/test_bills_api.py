"""/api/v1/bills (SPEC §7): shapes, roles, the open month's preview and closing by staff."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Bill, FxRate
from tests.billing.test_bills import AFTER_OCT, OCT, activate, close, event, rate, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def october(world, prices):  # type: ignore[no-untyped-def]
    activate(
        world, billing_currency="CNY", tax_percent=Decimal("6"), tax_label="VAT 6%", discount_percent=Decimal("10")
    )
    rate("CNY", "2026-10-30", "7.123456")
    send(
        world,
        event("g1", "gpt-4o", input_tokens=1_264_567, output_tokens=300_000),
        {**event("est", "gpt-4o"), "usage": None, "request_chars": 4000, "response_chars": 400},
    )
    return close(world).bills[0]


def test_a_bill_reads_as_spec_shows(world, october) -> None:
    body = world.client("alpha_member").get(f"/api/v1/bills/{october.pk}").json()
    assert {k: body[k] for k in ("number", "tenant", "period", "status", "currency", "fx_rate", "fx_rate_date")} == {
        "number": "BILL-alpha-202610",
        "tenant": "alpha",
        "period": "2026-10",
        "status": "closed",
        "currency": "CNY",
        "fx_rate": "7.123456",
        "fx_rate_date": "2026-10-30",
    }
    assert (body["fx_source"], body["tax_percent"], body["tax_inclusive"]) == ("ecb", "6", False)
    assert body["invoice"] == october.invoice.pk  # the draft invoice made at close
    first = body["lines"][0]
    # 1,264,567 × 2.5 / 10^6 = 3.1614175 USD × 7.123456 = 22.5202… → 22.52
    assert first == {
        "kind": "usage",
        "model": "gpt-4o",
        "bucket": "input",
        "quantity": 1_264_567 + 1000,
        "unit_price": "2.500000",
        "amount_usd": "3.163918",
        "amount": "22.54",
        "estimated_quantity": 1000,
        "project": None,
        "period": "2026-10",
        "description": "gpt-4o · input",
    }
    assert [line["kind"] for line in body["lines"]] == ["usage", "usage", "discount"]
    for name in ("usage_subtotal", "net", "tax", "total", "estimated_amount"):
        assert body[name].count(".") == 1 and len(body[name].split(".")[1]) == 2, (name, body[name])
    # the estimated share: 1,000 input × 2.5 + 100 output × 10 = 0.0035 USD × 7.123456 = 0.0249 → 0.02
    assert body["estimated_amount"] == "0.02"
    assert body["by_project"][0]["project"] == "chatbot"


def test_list_filters_and_roles(world, october) -> None:
    owner = world.client("alpha_owner")
    assert [b["number"] for b in owner.get("/api/v1/bills").json()["results"]] == ["BILL-alpha-202610"]
    assert owner.get("/api/v1/bills", {"period": "2026-09"}).json()["results"] == []
    assert owner.get("/api/v1/bills", {"status": "invoiced"}).json()["results"] == []
    assert owner.get("/api/v1/bills", {"period": "2026-13"}).status_code == 400
    assert owner.get("/api/v1/bills", {"status": "lost"}).status_code == 400
    assert world.client("finance").get("/api/v1/bills", {"tenant": "alpha"}).json()["count"] == 1
    # developers never see bills; other tenants' users get a 404 for the id
    assert world.client("alpha_dev").get("/api/v1/bills").json()["results"] == []
    assert world.client("alpha_dev").get(f"/api/v1/bills/{october.pk}").status_code == 404
    assert world.client("bravo_owner").get(f"/api/v1/bills/{october.pk}").status_code == 404
    assert world.client("bravo_owner").get("/api/v1/bills", {"tenant": "alpha"}).status_code == 404


def test_current_is_a_live_preview_with_a_forecast(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    now = timezone.now()
    send(world, event("now-1", "gpt-4o", now - dt.timedelta(minutes=1), input_tokens=1_000_000), now=now)
    body = world.client("alpha_admin").get("/api/v1/bills/current").json()
    assert body["status"] == "open" and body["id"] is None
    assert body["period"] == f"{now.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y-%m}"
    assert body["usage_subtotal"] == "2.50" and body["total"] == "2.50"
    elapsed = Decimal(body["elapsed_fraction"])
    assert 0 < elapsed <= 1
    # the forecast extends the month so far to the whole month
    assert Decimal(body["forecast"]["total"]) >= Decimal("2.50")
    assert abs(Decimal(body["forecast"]["total"]) - Decimal("2.50") / elapsed) < Decimal("0.02")
    assert world.client("alpha_dev").get("/api/v1/bills/current", {"tenant": "alpha"}).status_code == 403
    assert world.client("bravo_owner").get("/api/v1/bills/current", {"tenant": "alpha"}).status_code == 404


def test_current_without_any_fx_rate_is_a_clear_409(world, prices) -> None:
    FxRate.objects.all().delete()
    response = world.client("alpha_owner").get("/api/v1/bills/current")
    assert response.status_code == 409 and response.json()["error"]["code"] == "fx_rate_missing"


def test_finance_closes_a_month_through_the_api(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    finance = world.client("finance")
    closed = finance.post("/api/v1/bills/close", {"period": "2026-10", "tenant": "alpha"}, format="json")
    assert closed.status_code == 200, closed.json()
    assert closed.json() == [
        {"tenant": "alpha", "period": "2026-10", "status": "closed", "bills": ["BILL-alpha-202610"], "error": None}
    ]
    again = finance.post("/api/v1/bills/close", {"period": "2026-10", "tenant": "alpha"}, format="json")
    assert again.json()[0]["status"] == "already_closed" and Bill.objects.count() == 1
    everyone = finance.post("/api/v1/bills/close", {"period": "2026-10"}, format="json").json()
    assert {(r["tenant"], r["status"]) for r in everyone} == {("alpha", "already_closed"), ("bravo", "nothing_to_bill")}


def test_close_refusals(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("u", "house-model", input_tokens=5))
    finance = world.client("finance")
    blocked = finance.post("/api/v1/bills/close", {"period": "2026-10", "tenant": "alpha"}, format="json")
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "unpriced_events"
    assert blocked.json()["error"]["fields"] == {"models": ["house-model"]}
    future = finance.post("/api/v1/bills/close", {"period": "2099-01", "tenant": "alpha"}, format="json")
    assert future.status_code == 409 and future.json()["error"]["code"] == "period_not_finished"
    for wrong in ("October", "9999-12", "1999-12"):  # 9999-12 was a 500: its close looks at the month after
        bad = finance.post("/api/v1/bills/close", {"period": wrong, "tenant": "alpha"}, format="json")
        assert bad.status_code == 400 and "period" in bad.json()["error"]["fields"], wrong
    for user in ("alpha_owner", "am"):
        refused = world.client(user).post("/api/v1/bills/close", {"period": "2026-10"}, format="json")
        assert refused.status_code == 403


def test_bills_close_once_in_time_order(world, october) -> None:
    assert close(world, OCT, AFTER_OCT).status == "already_closed"
