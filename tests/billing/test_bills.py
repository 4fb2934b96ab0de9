"""Bills end to end (SPEC §7): events ingested at a simulated time, the month closed, the stored bill checked
against arithmetic written out by hand. Alpha is in Asia/Shanghai, so October is
2026-09-30T16:00Z … 2026-10-31T16:00Z."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.bills import bills_compute, month_close, months_close_due, period_parse
from billing.contracts import contract_activate, contract_create
from billing.models import Bill, BillLine, CloseBlock, FxRate
from metering.models import UsageEvent
from metering.services import IngestScope, events_ingest
from tests.factories import api_key_for
from tests.metering.conftest import add_price

pytestmark = pytest.mark.django_db

OCT = period_parse("2026-10")
NOV = period_parse("2026-11")
MID_OCT = dt.datetime(2026, 10, 15, 2, 0, tzinfo=dt.UTC)
AFTER_OCT = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)  # past October's end + 72 grace hours
AFTER_NOV = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


def _at(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def send(world, *events, now=MID_OCT, key=None):  # type: ignore[no-untyped-def]
    scope = IngestScope(kind="project_key", api_key=key or world.alpha_key)
    result = events_ingest(scope=scope, raw_events=list(events), now=now)
    assert not result.rejected, result.rejected
    return result


def event(event_id: str, model: str, when: dt.datetime = MID_OCT, **usage: int) -> dict:
    return {"event_id": event_id, "timestamp": _at(when), "model": model, "usage": usage}


def activate(world, **terms):  # type: ignore[no-untyped-def]
    terms.setdefault("starts_on", dt.date(2026, 1, 1))
    contract = contract_create(actor=None, tenant=world.alpha, **terms)
    return contract_activate(actor=None, contract=contract)


def rate(quote: str, day: str, value: str) -> None:
    FxRate.objects.create(base="USD", quote=quote, date=dt.date.fromisoformat(day), rate=Decimal(value), source="ecb")


def lines_of(bill: Bill) -> list[tuple]:
    return [
        (line.kind, line.model or None, line.bucket or None, line.quantity, line.amount)
        for line in bill.lines.order_by("position")
    ]


def close(world, period=OCT, now=AFTER_OCT):  # type: ignore[no-untyped-def]
    return month_close(tenant=world.alpha, period=period, now=now)


# --- hand-computed scenarios -----------------------------------------------------------------------------


def test_cny_bill_with_override_markup_discount_and_vat(world, prices) -> None:
    activate(
        world,
        billing_currency="CNY",
        markup_percent=Decimal("15"),
        discount_percent=Decimal("10"),
        tax_percent=Decimal("6"),
        tax_label="VAT 6%",
        rate_overrides=[{"model": "claude-sonnet-4", "input": "2", "output": "10"}],
    )
    rate("CNY", "2026-10-28", "7.000000")
    rate("CNY", "2026-10-30", "7.123456")  # the latest on or before Oct 31: this one
    rate("CNY", "2026-11-02", "9.000000")  # after the period: never used
    send(
        world,
        event("g1", "gpt-4o", input_tokens=1_264_567, output_tokens=300_000),
        event("c1", "claude-sonnet-4", input_tokens=2_000_000, cache_read_input_tokens=500_000, output_tokens=100_000),
    )
    result = close(world)
    assert result.status == "closed"
    [bill] = result.bills
    assert (bill.number, bill.currency, bill.fx_rate, bill.fx_rate_date) == (
        "BILL-alpha-202610",
        "CNY",
        Decimal("7.123456"),
        dt.date(2026, 10, 30),
    )
    # gpt-4o at book × 1.15: input 2.5 → 2.875, output 10 → 11.5
    #   input  1,264,567 × 2.875 / 10^6 = 3.635630125 USD × 7.123456 = 25.8985… → 25.90
    #   output   300,000 × 11.5  / 10^6 = 3.45 USD        × 7.123456 = 24.5759… → 24.58
    # claude-sonnet-4 by the override (whole card, no markup; cached falls back to the override's input 2)
    #   input  2,000,000 × 2 / 10^6 = 4 USD × 7.123456 = 28.4938… → 28.49
    #   cached   500,000 × 2 / 10^6 = 1 USD × 7.123456 =  7.1234… →  7.12
    #   output   100,000 × 10 / 10^6 = 1 USD                        →  7.12
    # usage_subtotal = 25.90 + 24.58 + 28.49 + 7.12 + 7.12 = 93.21
    # discount = −round(93.21 × 10 %) = −9.32; net = 83.89; VAT 6 % = 5.0334 → 5.03; total 88.92
    assert lines_of(bill) == [
        ("usage", "claude-sonnet-4", "input", 2_000_000, Decimal("28.49")),
        ("usage", "claude-sonnet-4", "cached_input", 500_000, Decimal("7.12")),
        ("usage", "claude-sonnet-4", "output", 100_000, Decimal("7.12")),
        ("usage", "gpt-4o", "input", 1_264_567, Decimal("25.90")),
        ("usage", "gpt-4o", "output", 300_000, Decimal("24.58")),
        ("discount", None, None, None, Decimal("-9.32")),
    ]
    assert (bill.usage_subtotal, bill.net, bill.tax, bill.total) == (
        Decimal("93.21"),
        Decimal("83.89"),
        Decimal("5.03"),
        Decimal("88.92"),
    )
    gpt_input = bill.lines.get(model="gpt-4o", bucket="input")
    assert gpt_input.unit_price == Decimal("2.875") and gpt_input.amount_usd == Decimal("3.635630")


def test_an_override_prices_every_name_the_book_prices_as_its_model(world, prices) -> None:
    """A contract's price for claude-sonnet-4 holds for a dated snapshot (a book alias) and a gateway's
    `anthropic/claude-sonnet-4` too, at ingestion and on the bill alike; another model keeps book × markup."""
    from metering.models import ModelPrice
    from metering.pricebook import price_book_changed

    ModelPrice.objects.filter(model="claude-sonnet-4").update(aliases=["claude-sonnet-4-2025*"])
    price_book_changed()
    activate(
        world,
        billing_currency="USD",
        markup_percent=Decimal("15"),
        rate_overrides=[{"model": "claude-sonnet-4", "input": "2", "output": "10"}],
    )
    send(
        world,
        event("snapshot", "claude-sonnet-4-20250514", input_tokens=1_000_000),
        event("routed", "anthropic/claude-sonnet-4", input_tokens=1_000_000),
        event("book", "gpt-4o", input_tokens=1_000_000),
    )
    costs = dict(UsageEvent.objects.values_list("event_id", "cost"))
    assert costs == {"snapshot": Decimal("2"), "routed": Decimal("2"), "book": Decimal("2.875")}
    [bill] = close(world).bills
    assert lines_of(bill) == [
        ("usage", "anthropic/claude-sonnet-4", "input", 1_000_000, Decimal("2.00")),
        ("usage", "claude-sonnet-4-20250514", "input", 1_000_000, Decimal("2.00")),
        ("usage", "gpt-4o", "input", 1_000_000, Decimal("2.88")),
    ]


def test_jpy_commitment_and_tax_inclusive(world, prices) -> None:
    world.alpha.billing_currency = "JPY"
    world.alpha.save()
    activate(
        world,
        billing_currency="JPY",
        tax_percent=Decimal("10"),
        tax_inclusive=True,
        minimum_monthly_commitment=Decimal("50000"),
    )
    rate("JPY", "2026-10-26", "151.234567")  # five days before Oct 31: within the seven-day rule
    send(world, event("j1", "gpt-4o", input_tokens=10_000_000, output_tokens=1_000_000))
    [bill] = close(world).bills
    # input 10,000,000 × 2.5 / 10^6 = 25 USD × 151.234567 = 3780.86… → 3781 (JPY has no minor unit)
    # output 1,000,000 × 10 / 10^6 = 10 USD × 151.234567 = 1512.35… → 1512
    # usage 5293 < commitment 50000 → commitment line 44707; net 50000
    # tax-inclusive 10 %: 50000 × 0.1 / 1.1 = 4545.45… → 4545; total = net = 50000
    assert lines_of(bill) == [
        ("usage", "gpt-4o", "input", 10_000_000, Decimal("3781")),
        ("usage", "gpt-4o", "output", 1_000_000, Decimal("1512")),
        ("commitment", None, None, None, Decimal("44707")),
    ]
    assert (bill.net, bill.tax, bill.total) == (Decimal("50000"), Decimal("4545"), Decimal("50000"))


def test_eur_graduated_tiers(world) -> None:
    add_price("big-model", input="100", output="100")
    activate(
        world,
        billing_currency="EUR",
        tax_percent=Decimal("19"),
        volume_tiers=[{"from_amount": "1000", "percent": "5"}, {"from_amount": "2000", "percent": "10"}],
    )
    rate("EUR", "2026-10-30", "0.900000")
    send(world, event("e1", "big-model", input_tokens=30_000_000, output_tokens=5_000_000))
    [bill] = close(world).bills
    # input 30,000,000 × 100 / 10^6 = 3000 USD × 0.9 = 2700.00; output 5,000,000 × 100 / 10^6 × 0.9 = 450.00
    # subtotal 3150.00; tier 1: −(2000 − 1000) × 5 % = −50.00; tier 2: −(3150 − 2000) × 10 % = −115.00
    # net = 3150 − 165 = 2985.00; VAT 19 % = 567.15; total 3552.15
    assert lines_of(bill) == [
        ("usage", "big-model", "input", 30_000_000, Decimal("2700.00")),
        ("usage", "big-model", "output", 5_000_000, Decimal("450.00")),
        ("volume_tier", None, None, None, Decimal("-50.00")),
        ("volume_tier", None, None, None, Decimal("-115.00")),
    ]
    assert (bill.net, bill.tax, bill.total) == (Decimal("2985.00"), Decimal("567.15"), Decimal("3552.15"))


def test_reasoning_priced_apart_has_its_own_line(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(
        world,
        event("o1", "o3", input_tokens=1_000_000, output_tokens=500_000, reasoning_tokens=200_000),
        event("g1", "gpt-4o", output_tokens=100_000, reasoning_tokens=50_000),
    )
    [bill] = close(world).bills
    # o3 prices reasoning apart (12 vs output 8): output line = 500,000 − 200,000 = 300,000 × 8 = 2.40,
    # reasoning 200,000 × 12 = 2.40; input 1,000,000 × 2 = 2.00.
    # gpt-4o has no reasoning price: its 100,000 output tokens (reasoning included) × 10 = 1.00, no reasoning line.
    assert lines_of(bill) == [
        ("usage", "gpt-4o", "output", 100_000, Decimal("1.00")),
        ("usage", "o3", "input", 1_000_000, Decimal("2.00")),
        ("usage", "o3", "output", 300_000, Decimal("2.40")),
        ("usage", "o3", "reasoning", 200_000, Decimal("2.40")),
    ]
    assert (bill.fx_rate, bill.fx_rate_date, bill.total) == (Decimal(1), None, Decimal("7.80"))


def test_mid_month_price_change_gives_one_line_per_unit_price(world) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    change = dt.datetime(2026, 10, 16, tzinfo=dt.UTC)
    add_price("gpt-4o", input="2.5", output="10", effective_to=change)
    add_price("gpt-4o", input="2", output="8", effective_from=change)
    send(
        world,
        event("before", "gpt-4o", MID_OCT, input_tokens=1_000_000),
        event("after", "gpt-4o", MID_OCT + dt.timedelta(days=5), input_tokens=1_000_000),
        now=MID_OCT + dt.timedelta(days=6),
    )
    [bill] = close(world).bills
    # 1,000,000 × 2.5 = 2.50 before the change; 1,000,000 × 2 = 2.00 after it
    assert [(line.unit_price, line.amount) for line in bill.lines.order_by("position")] == [
        (Decimal("2"), Decimal("2.00")),
        (Decimal("2.5"), Decimal("2.50")),
    ]
    assert bill.total == Decimal("4.50")


def test_late_event_after_close_is_an_adjustment_on_the_next_bill(world, prices) -> None:
    activate(world, billing_currency="CNY", tax_percent=Decimal("6"))
    rate("CNY", "2026-10-30", "7.000000")
    rate("CNY", "2026-11-30", "8.000000")
    send(world, event("oct-1", "gpt-4o", input_tokens=1_000_000))
    [october] = close(world).bills
    # A gateway's backlog: an October event arrives on Nov 6 (within the 35-day window), after October closed.
    late = dt.datetime(2026, 10, 31, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai, still October
    send(world, event("oct-late", "gpt-4o", late, input_tokens=400_000), now=dt.datetime(2026, 11, 6, tzinfo=dt.UTC))
    send(
        world,
        event("nov-1", "gpt-4o", dt.datetime(2026, 11, 10, tzinfo=dt.UTC), input_tokens=1_000_000),
        now=dt.datetime(2026, 11, 10, 1, tzinfo=dt.UTC),
    )
    october.refresh_from_db()
    assert october.total == Decimal("18.55")  # 2.5 × 7 = 17.50 + 6 % 1.05: October's bill never changes
    [november] = close(world, NOV, AFTER_NOV).bills
    # November usage: 1,000,000 × 2.5 × 8 = 20.00
    # adjustment: the late 400,000 October tokens at October's rate: 400,000 × 2.5 / 10^6 × 7 = 7.00
    # net 27.00, VAT 6 % 1.62, total 28.62
    assert lines_of(november) == [
        ("usage", "gpt-4o", "input", 1_000_000, Decimal("20.00")),
        ("adjustment", "gpt-4o", "input", 400_000, Decimal("7.00")),
    ]
    adjustment = november.lines.get(kind="adjustment")
    assert (adjustment.period, adjustment.fx_rate) == (OCT, Decimal("7"))
    assert (november.net, november.tax, november.total) == (Decimal("27.00"), Decimal("1.62"), Decimal("28.62"))
    # Closing December finds nothing new for October or November: no second adjustment.
    rate("CNY", "2026-12-31", "8.000000")
    [december] = close(world, period_parse("2026-12"), dt.datetime(2027, 1, 5, tzinfo=dt.UTC)).bills
    assert lines_of(december) == []


def test_rerating_keeps_a_billed_months_events_at_the_price_their_bill_charged(world, prices) -> None:
    """A price back-dated into a billed month, then `rerate --all`: October's priced events keep what its bill
    charged (the invoice and the usage under it stay equal); November's are re-priced, and October's late event
    of a model that had no price — never billed — is priced, to be billed as November's adjustment."""
    from io import StringIO

    from metering.prices import price_add
    from metering.verification import rollups_verify

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("oct-1", "gpt-4o", input_tokens=1_000_000))
    [october] = close(world).bills
    late = dt.datetime(2026, 10, 31, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai, still October
    send(
        world, event("oct-late", "late-llm", late, input_tokens=1_000_000), now=dt.datetime(2026, 11, 6, tzinfo=dt.UTC)
    )
    november_day = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
    send(world, event("nov-1", "gpt-4o", november_day, input_tokens=1_000_000), now=november_day)
    for model, start in (
        ("gpt-4o", dt.datetime(2026, 10, 1, tzinfo=dt.UTC)),
        ("late-llm", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
    ):
        price_add(
            actor=None,
            provider="openai",
            model=model,
            prices={"input": Decimal("5"), "output": Decimal("10")},
            effective_from=start,
            rerate=False,
        )
    out = StringIO()
    call_command("rerate", "--all", stdout=out)
    assert "2 re-priced, 0 still without a price, 1 of billed months kept as billed" in out.getvalue()
    costs = dict(UsageEvent.objects.values_list("event_id", "cost"))
    assert (costs["nov-1"], costs["oct-late"]) == (Decimal("5"), Decimal("5"))
    assert costs["oct-1"] == Bill.objects.get(pk=october.pk).usage_subtotal == Decimal("2.5")
    # The background re-rating of the late gpt-4o price starts after October: it reads none of October's events.
    from metering.models import ModelPrice
    from metering.prices import price_window_rerate

    window = price_window_rerate(ModelPrice.objects.get(model="gpt-4o", effective_to=None).pk)
    assert (window.examined, window.billed, window.changed) == (1, 0, 0)  # November's, already re-priced
    assert rollups_verify() == []


def test_estimate_corrected_after_close_is_adjusted(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(
        world,
        {
            "event_id": "est",
            "timestamp": _at(MID_OCT),
            "model": "gpt-4o",
            "request_chars": 40_000,
            "response_chars": 8_000,
        },
    )
    estimated = UsageEvent.objects.get(event_id="est")
    assert estimated.estimated and estimated.input_tokens == 10_000 and estimated.output_tokens == 2_000
    [october] = close(world).bills
    # estimated: 10,000 × 2.5 / 10^6 = 0.025 → 0.03; 2,000 × 10 / 10^6 = 0.02 → total 0.05, all of it estimated
    assert (october.total, october.estimated_amount) == (Decimal("0.05"), Decimal("0.05"))
    # The real usage arrives after October closed: 30,000 in, 1,000 out.
    corrected = send(
        world,
        event("est", "gpt-4o", input_tokens=30_000, output_tokens=1_000),
        now=dt.datetime(2026, 11, 6, tzinfo=dt.UTC),
    )
    assert corrected.corrected == 1
    [november] = close(world, NOV, AFTER_NOV).bills
    # input +20,000 × 2.5 / 10^6 = 0.05; output −1,000 × 10 / 10^6 = −0.01; net 0.04
    assert lines_of(november) == [
        ("adjustment", "gpt-4o", "input", 20_000, Decimal("0.05")),
        ("adjustment", "gpt-4o", "output", -1_000, Decimal("-0.01")),
    ]
    assert (november.total, november.estimated_amount) == (Decimal("0.04"), Decimal("0.00"))


def test_bills_and_the_open_month_are_computed_from_the_rollups_without_reading_events(world, prices) -> None:
    """The daily rollups keep each event's price row, provider, estimated flag and billable flag: closing a month,
    and the open month's preview (with the closed months it checks for late usage), read no event — a tenant with
    millions of events a month sees its bill at once — and charge what the events cost."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.bills import bill_preview

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    internal = world.alpha.projects.create(slug="lab", name="Lab", is_internal=True)
    send(
        world,
        event("oct-1", "gpt-4o", input_tokens=1_000_000, output_tokens=100_000),
        {"event_id": "oct-est", "timestamp": _at(MID_OCT), "model": "gpt-4o", "request_chars": 40_000},
        event("oct-o3", "o3", input_tokens=1_000_000, output_tokens=100_000, reasoning_tokens=50_000),
    )
    send(world, event("oct-lab", "gpt-4o", input_tokens=5_000_000), key=api_key_for(internal)[0])
    with CaptureQueriesContext(connection) as closing:
        [october] = close(world).bills
    # gpt-4o input 1,010,000 (the estimate's 10,000 with them) × 2.5 / 10^6 = 2.525 → 2.53; output 100,000 × 10 =
    # 1.00; o3 input 2.00, output less reasoning 50,000 × 8 = 0.40, reasoning 50,000 × 12 = 0.60. The internal
    # project's 5,000,000 tokens are not billed.
    assert lines_of(october) == [
        ("usage", "gpt-4o", "input", 1_010_000, Decimal("2.53")),
        ("usage", "gpt-4o", "output", 100_000, Decimal("1.00")),
        ("usage", "o3", "input", 1_000_000, Decimal("2.00")),
        ("usage", "o3", "output", 50_000, Decimal("0.40")),
        ("usage", "o3", "reasoning", 50_000, Decimal("0.60")),
    ]
    assert (october.usage_subtotal, october.estimated_amount) == (Decimal("6.53"), Decimal("0.03"))
    november_day = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
    send(world, event("nov-1", "gpt-4o", november_day, input_tokens=400_000), now=november_day)
    with CaptureQueriesContext(connection) as previewing:
        preview = bill_preview(world.alpha, now=november_day + dt.timedelta(hours=1))
    assert preview.bills[0].totals.usage_subtotal == Decimal("1.00")  # 400,000 × 2.5 / 10^6; no adjustment
    for captured in (closing, previewing):
        assert [q["sql"] for q in captured.captured_queries if "metering_usageevent" in q["sql"]] == []


def test_split_bill_per_project_with_one_commitment(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    activate(world, billing_currency="USD", invoice_split="project", minimum_monthly_commitment=Decimal("10"))
    research_key, _secret = api_key_for(world.alpha_other_project)
    send(world, event("chat-1", "gpt-4o", input_tokens=1_000_000))
    send(world, event("research-1", "gpt-4o", output_tokens=300_000), key=research_key)
    bills = close(world).bills
    # chatbot 1,000,000 × 2.5 = 2.50; research 300,000 × 10 = 3.00; together 5.50 < 10: the shortfall 4.50
    # goes on the first bill (by project name: "Alpha Chatbot").
    assert [(b.number, b.group_label, b.total) for b in bills] == [
        ("BILL-alpha-202610-chatbot", "Alpha Chatbot", Decimal("7.00")),
        ("BILL-alpha-202610-research", "Alpha Research", Decimal("3.00")),
    ]
    assert lines_of(bills[0])[-1] == ("commitment", None, None, None, Decimal("4.50"))
    assert {line.project_id for line in bills[1].lines.all()} == {world.alpha_other_project.pk}


def test_internal_projects_are_metered_but_never_billed(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    world.alpha_other_project.is_internal = True
    world.alpha_other_project.save()
    research_key, _secret = api_key_for(world.alpha_other_project)
    send(world, event("billed", "gpt-4o", input_tokens=1_000_000))
    send(world, event("internal", "gpt-4o", input_tokens=9_000_000), key=research_key)
    [bill] = close(world).bills
    assert bill.total == Decimal("2.50")


# --- refusals, idempotency, crash-safety ---------------------------------------------------------------


def test_no_rate_within_seven_days_blocks_with_a_reason(world, prices) -> None:
    activate(world, billing_currency="CNY")
    rate("CNY", "2026-10-23", "7.000000")  # eight days before Oct 31
    send(world, event("g", "gpt-4o", input_tokens=1000))
    result = close(world)
    assert result.status == "blocked" and result.error.code == "fx_rate_missing"
    assert "2026-10-24" in result.error.message and "2026-10-31" in result.error.message
    assert Bill.objects.count() == 0
    assert CloseBlock.objects.get(tenant=world.alpha, period=OCT).code == "fx_rate_missing"
    rate("CNY", "2026-10-24", "7.100000")  # exactly seven days: allowed
    assert close(world).status == "closed"
    assert not CloseBlock.objects.exists()


def test_unpriced_events_block_closing_with_the_models(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("u1", "house-model", input_tokens=10), event("u2", "house-model", input_tokens=10))
    result = close(world)
    assert result.status == "blocked" and result.error.code == "unpriced_events"
    assert result.error.fields == {"models": ["house-model"]} and "house-model (2 events)" in result.error.message


def test_closing_twice_yields_one_bill(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    first = close(world)
    second = close(world)
    assert (first.status, second.status) == ("closed", "already_closed")
    assert [b.pk for b in first.bills] == [b.pk for b in second.bills]
    assert Bill.objects.count() == 1


def test_a_crash_half_way_leaves_no_partial_bill(world, prices, monkeypatch) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000, output_tokens=10))

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker killed")

    monkeypatch.setattr(BillLine.objects, "bulk_create", crash)
    with pytest.raises(RuntimeError):
        close(world)
    assert Bill.objects.count() == 0 and BillLine.objects.count() == 0
    monkeypatch.undo()
    [bill] = close(world).bills
    assert bill.total == Decimal("2.50") and bill.lines.count() == 2


def test_the_bill_never_changes_when_recomputed_from_the_same_events(world, prices) -> None:
    activate(world, billing_currency="CNY", markup_percent=Decimal("7.5"), discount_percent=Decimal("3"))
    rate("CNY", "2026-10-30", "7.123456")
    for n in range(30):
        send(
            world,
            event(
                f"r{n}",
                ["gpt-4o", "o3", "claude-sonnet-4"][n % 3],
                MID_OCT + dt.timedelta(hours=n),
                input_tokens=1234 * n + 7,
                output_tokens=321 * n,
                reasoning_tokens=17 * n,
                cache_read_input_tokens=55 * n,
            ),
            now=MID_OCT + dt.timedelta(days=2),
        )
    [bill] = close(world).bills
    [again] = bills_compute(world.alpha, OCT)
    assert again.totals.total == bill.total and again.totals.net == bill.net
    assert [line.amount for line in again.totals.lines] == [line.amount for line in bill.lines.order_by("position")]


def test_beat_closes_after_the_grace_hours(world, prices) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    end_of_october = dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)
    assert months_close_due(now=end_of_october + dt.timedelta(hours=71)) == []
    [result] = months_close_due(now=end_of_october + dt.timedelta(hours=73))
    assert (result.tenant, result.period, result.status) == (world.alpha, OCT, "closed")
    assert months_close_due(now=end_of_october + dt.timedelta(hours=74)) == []


def test_close_month_command(world, prices, capsys) -> None:
    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    call_command("close_month", "--period", "2026-10", "--tenant", "alpha")
    assert "BILL-alpha-202610 2.50" in capsys.readouterr().out
    for wrong in ("2026-13", "9999-12"):
        with pytest.raises(CommandError, match="YYYY-MM, 2000–2100"):
            call_command("close_month", "--period", wrong)
    with pytest.raises(CommandError):
        call_command("close_month", "--period", "2099-01", "--tenant", "nobody")


def test_a_contract_cannot_start_in_a_billed_month(world, prices) -> None:
    from billing.contracts import ContractRuleViolation

    world.alpha.billing_currency = "USD"
    world.alpha.save()
    send(world, event("g", "gpt-4o", input_tokens=1_000_000))
    close(world)
    draft = contract_create(actor=None, tenant=world.alpha, starts_on=dt.date(2026, 10, 20), billing_currency="USD")
    with pytest.raises(ContractRuleViolation) as refused:
        contract_activate(actor=None, contract=draft)
    assert refused.value.code == "contract_starts_in_billed_month" and "BILL-alpha-202610" in str(refused.value)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gpt-4o", "o3", "claude-sonnet-4"]),
            st.integers(0, 3_000_000),
            st.integers(0, 400_000),
            st.integers(0, 100),
            st.integers(0, 20_000),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([("USD", "1"), ("CNY", "7.123456"), ("JPY", "151.5"), ("KWD", "0.307123")]),
    st.sampled_from(["0", "7.5", "15"]),
    st.booleans(),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_stored_bills_hold_the_invariants(world, prices, events, currency_rate, markup, inclusive) -> None:
    """Lines sum to net; tax follows its rule; no amount has more digits than the currency; recomputing from
    the same events gives the same bill."""
    from django.db import transaction

    from billing.money import minor_units

    currency, fx = currency_rate
    with transaction.atomic():
        activate(
            world,
            billing_currency=currency,
            markup_percent=Decimal(markup),
            discount_percent=Decimal("3"),
            tax_percent=Decimal("6"),
            tax_inclusive=inclusive,
            volume_tiers=[{"from_amount": "10", "percent": "2"}],
        )
        if currency != "USD":
            rate(currency, "2026-10-30", fx)
        send(
            world,
            *[
                event(
                    f"h{n}",
                    model,
                    MID_OCT + dt.timedelta(minutes=n),
                    input_tokens=i,
                    output_tokens=o,
                    reasoning_tokens=min(r, o),
                    cache_read_input_tokens=c,
                )
                for n, (model, i, o, r, c) in enumerate(events)
            ],
            now=MID_OCT + dt.timedelta(hours=1),
        )
        [bill] = close(world).bills
        lines = list(bill.lines.order_by("position"))
        assert sum((line.amount for line in lines), Decimal(0)) == bill.net
        t = Decimal(6) / 100
        if inclusive:
            assert bill.total == bill.net and bill.tax == (bill.net * t / (1 + t)).quantize(
                Decimal(1).scaleb(-minor_units(currency)), rounding="ROUND_HALF_UP"
            )
        else:
            assert bill.total == bill.net + bill.tax
        for amount in [bill.net, bill.tax, bill.total, bill.usage_subtotal] + [line.amount for line in lines]:
            assert amount == amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
        [again] = bills_compute(world.alpha, OCT)
        assert [(x.kind, x.quantity, x.amount) for x in again.totals.lines] == [
            (line.kind, line.quantity, line.amount) for line in lines
        ]
        transaction.set_rollback(True)
