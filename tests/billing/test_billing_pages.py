"""Portal pages for bills, contracts, the finance overview and FX rates, with the roles of SPEC §4."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import Bill, CloseBlock, Contract, FxRate
from tests.billing.test_bills import close, event, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_bill(world, prices):  # type: ignore[no-untyped-def]
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000, output_tokens=10_000))
    return close(world).bills[0]


def test_members_read_bills_and_their_lines(world, closed_bill) -> None:
    client = world.portal("alpha_member")
    listing = client.get("/t/alpha/bills/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "BILL-alpha-202610" in page and "This month so far" in page
    detail = client.get(f"/t/alpha/bills/{closed_bill.pk}/").content.decode()
    # 1,000,000 × 2.5 = $2.50 input; 10,000 × 10 = $0.10 output
    assert "$2.50" in detail and "$0.10" in detail and "$2.60" in detail and "Alpha Chatbot" in detail
    assert world.portal("alpha_dev").get("/t/alpha/bills/").status_code == 403
    assert world.portal("bravo_owner").get(f"/t/alpha/bills/{closed_bill.pk}/").status_code == 404
    assert world.portal("alpha_owner").get(f"/t/alpha/bills/{closed_bill.pk + 999}/").status_code == 404


def test_the_open_month_names_each_line_by_model_and_bucket_in_the_readers_language(world, prices) -> None:
    from django.utils import timezone

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    import zoneinfo

    now = timezone.now()
    month_start = now.astimezone(zoneinfo.ZoneInfo(world.alpha.timezone)).replace(day=1, hour=0, minute=0, second=0)
    when = max(now - dt.timedelta(minutes=5), month_start + dt.timedelta(seconds=1))  # in the open month
    send(
        world,
        event("open-1", "gpt-4o", when, input_tokens=2000, cached_input_tokens=500),
        now=now,
    )
    client = world.portal("alpha_owner")
    page = client.get("/t/alpha/bills/").content.decode()
    assert "<td>gpt-4o · Input</td>" in page and "<td>gpt-4o · Cached input</td>" in page
    assert "cached_input<" not in page
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "<td>gpt-4o · 缓存输入</td>" in client.get("/t/alpha/bills/").content.decode()


def test_bills_page_explains_a_blocked_month(world, prices) -> None:
    CloseBlock.objects.create(tenant=world.alpha, period=dt.date(2026, 10, 1), code="fx_rate_missing", detail="No rate")
    page = world.portal("alpha_owner").get("/t/alpha/bills/").content.decode()
    assert "cannot close yet" in page and "No rate" in page


def test_account_manager_creates_edits_and_activates_a_contract(world, prices) -> None:
    client = world.portal("am")
    form = {
        "starts_on": "2026-12-01",
        "billing_currency": "CNY",
        "markup_percent": "12",
        "discount_percent": "5",
        "volume_tiers": "10000 3\n50000 5",
        "rate_overrides": "gpt-4o input=2 output=8 cached_input=1",
        "minimum_monthly_commitment": "1000",
        "payment_terms_days": "30",
        "tax_percent": "6",
        "tax_label": "增值税 6%",
        "invoice_type": "vat_special",
        "invoice_split": "tenant",
        "late_event_grace_hours": "72",
    }
    created = client.post("/t/alpha/contracts/", form)
    assert created.status_code == 302, created.content.decode()[:2000]
    contract = Contract.objects.get(tenant=world.alpha)
    assert contract.status == "draft" and contract.volume_tiers == [
        {"from_amount": "10000.0000", "percent": "3.0000"},
        {"from_amount": "50000.0000", "percent": "5.0000"},
    ]
    assert contract.rate_overrides[0]["model"] == "gpt-4o" and Decimal(contract.rate_overrides[0]["input"]) == 2
    edited = client.post(f"/t/alpha/contracts/{contract.pk}/", {**form, "discount_percent": "7"})
    assert edited.status_code == 302
    contract.refresh_from_db()
    assert contract.discount_percent == Decimal("7")
    client.post(f"/t/alpha/contracts/{contract.pk}/", {"action": "activate"})
    contract.refresh_from_db()
    assert contract.status == "active"
    page = client.get(f"/t/alpha/contracts/{contract.pk}/").content.decode()
    assert "Edit draft" not in page and "gpt-4o" in page
    # a tenant owner reads contracts but cannot write them
    owner = world.portal("alpha_owner")
    assert owner.get("/t/alpha/contracts/").status_code == 200
    assert owner.post("/t/alpha/contracts/", form).status_code == 403


def test_a_bad_contract_form_says_what_is_wrong(world) -> None:
    response = world.portal("am").post(
        "/t/alpha/contracts/",
        {
            "starts_on": "2026-12-01",
            "billing_currency": "XXX",
            "markup_percent": "0",
            "discount_percent": "0",
            "volume_tiers": "50000 5\n10000 3",
            "rate_overrides": "gpt-4o input=2 price=8",
            "minimum_monthly_commitment": "0",
            "payment_terms_days": "30",
            "tax_percent": "0",
            "invoice_type": "commercial",
            "invoice_split": "tenant",
            "late_event_grace_hours": "72",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "name=value" in page
    assert not Contract.objects.exists()


def test_finance_overview_closing_and_fx_rates(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    finance = world.portal("finance")
    far = finance.post("/staff/bills/close/", {"period": "9999-12", "tenant": "alpha"}, follow=True)
    assert far.status_code == 200 and "Name the month as YYYY-MM." in far.content.decode()
    closed = finance.post("/staff/bills/close/", {"period": "2026-10", "tenant": "alpha"}, follow=True)
    assert "1 closed" in closed.content.decode()
    assert Bill.objects.filter(tenant=world.alpha).count() == 1
    overview = finance.get("/staff/bills/", {"period": "2026-10"}).content.decode()
    assert "BILL-alpha-202610" in overview and "$2.50" in overview
    added = finance.post("/staff/fx-rates/", {"quote": "cny", "date": "2026-11-20", "rate": "7.1234567"})
    assert added.status_code == 302
    assert FxRate.objects.get(quote="CNY", date="2026-11-20").rate == Decimal("7.123457")
    duplicate = finance.post("/staff/fx-rates/", {"quote": "CNY", "date": "2026-11-20", "rate": "7"})
    assert "exists already" in duplicate.content.decode()
    assert "7.123457" in finance.get("/staff/fx-rates/", {"quote": "CNY"}).content.decode()
    # an account manager reads but neither closes nor adds rates
    manager = world.portal("am")
    assert manager.get("/staff/bills/").status_code == 200
    assert manager.post("/staff/bills/close/", {"period": "2026-10"}).status_code == 403
    assert manager.post("/staff/fx-rates/", {"quote": "CNY", "date": "2026-11-21", "rate": "7"}).status_code == 403


def test_a_new_contract_starts_from_the_terms_in_force(world, prices) -> None:
    from tests.billing.test_bills import activate

    client = world.portal("am")
    blank = client.get("/t/alpha/contracts/")
    assert blank.context["form"].initial == {"billing_currency": world.alpha.billing_currency}
    current = activate(
        world,
        billing_currency="CNY",
        markup_percent=Decimal("12"),
        discount_percent=Decimal("5"),
        tax_percent=Decimal("6"),
        tax_label="增值税",
        rate_overrides=[{"model": "gpt-4o", "input": "2", "output": "8"}],
    )
    page = client.get("/t/alpha/contracts/")
    initial = page.context["form"].initial
    assert (initial["markup_percent"], initial["discount_percent"], initial["tax_label"]) == ("12", "5", "增值税")
    assert initial["billing_currency"] == "CNY" and "gpt-4o" in initial["rate_overrides"]
    assert "starts_on" not in initial  # the new contract's own date
    assert f"Filled in with the terms of {current.number}" in page.content.decode()


def test_the_fx_page_says_which_rates_this_months_close_still_needs(world, prices) -> None:
    from unittest import mock

    from billing.contracts import contract_activate, contract_create
    from tests.billing.test_bills import activate, rate

    activate(world, billing_currency="CNY")
    usd = contract_create(actor=None, tenant=world.bravo, starts_on=dt.date(2026, 1, 1), billing_currency="USD")
    contract_activate(actor=None, contract=usd)
    rate("CNY", "2026-10-30", "7.1")
    rate("EUR", "2026-11-20", "0.92")  # not a contract's currency: not listed
    finance = world.portal("finance")
    with mock.patch("django.utils.timezone.localdate", return_value=dt.date(2026, 11, 23)):
        page = finance.get("/staff/fx-rates/", {"quote": "EUR"}).content.decode()
    needs = page[
        page.index('data-testid="fx-closing-needs"') : page.index("</section>", page.index("fx-closing-needs"))
    ]
    assert "USD→CNY: the latest rate is from 2026-10-30 (24 days ago)" in needs
    assert "2026-11-23 – 2026-11-30" in needs and "EUR" not in needs
    assert "USD→USD" not in needs  # prices are in USD already
    # a rate in the closing window: nothing more is needed
    rate("CNY", "2026-11-23", "7.2")
    with mock.patch("django.utils.timezone.localdate", return_value=dt.date(2026, 11, 23)):
        page = finance.get("/staff/fx-rates/").content.decode()
    assert "fx-closing-needs" not in page
