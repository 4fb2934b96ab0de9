"""SPEC §7 bill computation, by hand and by property."""

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from billing.bill_math import Terms, UsageGroup, bill_compute
from billing.money import minor_units, money_str, quantize_money


def test_minor_units_follow_iso_4217() -> None:
    assert [minor_units(c) for c in ("JPY", "USD", "CNY", "EUR", "KWD")] == [0, 2, 2, 2, 3]
    assert money_str(D("1234.5"), "USD") == "1234.50"
    assert money_str(D("4999.5"), "JPY") == "5000"
    assert quantize_money(D("-0.125"), "USD") == D("-0.13")  # half-up is away from zero


def test_cny_with_an_override_a_discount_and_vat_exclusive() -> None:
    terms = Terms(currency="CNY", fx_rate=D("7.123456"), discount_percent=D(10), tax_percent=D(6))
    bill = bill_compute(
        [
            # rate override: gpt-4o input at 3.000000 USD per 1M
            UsageGroup("gpt-4o", "input", D("3"), 1_264_567),
            UsageGroup("gpt-4o", "cached_input", D("1.5"), 48_210),
            UsageGroup("o3", "reasoning", D("12"), 301_220),
            UsageGroup("o3", "cache_write", D("2"), 0),  # zero tokens: no line
        ],
        terms,
    )
    # 1,264,567 × 3 / 1e6 = 3.793701 USD × 7.123456 = 27.024262… → 27.02
    # 48,210 × 1.5 / 1e6 = 0.072315 × 7.123456 = 0.5151… → 0.52
    # 301,220 × 12 / 1e6 = 3.61464 × 7.123456 = 25.7487… → 25.75
    assert [(line.kind, line.amount) for line in bill.lines] == [
        ("usage", D("27.02")),
        ("usage", D("0.52")),
        ("usage", D("25.75")),
        ("discount", D("-5.33")),
    ]
    assert bill.lines[0].amount_usd == D("3.793701")
    assert bill.usage_subtotal == D("53.29")
    # discount −round(53.29 × 10 %) = −5.33; net 47.96; tax round(47.96 × 6 %) = 2.88; total 50.84
    assert (bill.net, bill.tax, bill.total) == (D("47.96"), D("2.88"), D("50.84"))


def test_jpy_with_a_minimum_commitment_and_tax_inclusive() -> None:
    terms = Terms(
        currency="JPY",
        fx_rate=D("151.234567"),
        tax_percent=D(10),
        tax_inclusive=True,
        minimum_monthly_commitment=D(50000),
    )
    bill = bill_compute([UsageGroup("claude-3-5-haiku", "input", D("0.8"), 120_000)], terms)
    # 120,000 × 0.8 / 1e6 = 0.096 USD × 151.234567 = 14.5185… → ¥15; commitment 50,000 − 15 = 49,985
    assert [(line.kind, line.amount) for line in bill.lines] == [("usage", D(15)), ("commitment", D(49985))]
    # inclusive: net 50,000; tax round(50,000 × 0.1 / 1.1) = 4,545; total = net
    assert (bill.net, bill.tax, bill.total) == (D(50000), D(4545), D(50000))


def test_eur_with_graduated_volume_tiers() -> None:
    terms = Terms(
        currency="EUR", fx_rate=D("0.912345"), tax_percent=D(19), volume_tiers=((D(1000), D(2)), (D(3000), D(4)))
    )
    bill = bill_compute([UsageGroup("gpt-4o", "input", D("2.5"), 2_000_000_000)], terms)
    # 2e9 × 2.5 / 1e6 = 5,000 USD × 0.912345 = 4,561.725 → 4,561.73
    # tier 1: −(3,000 − 1,000) × 2 % = −40.00; tier 2: −(4,561.73 − 3,000) × 4 % = −62.4692 → −62.47
    assert [(line.kind, line.amount) for line in bill.lines] == [
        ("usage", D("4561.73")),
        ("volume_tier", D("-40.00")),
        ("volume_tier", D("-62.47")),
    ]
    # net 4,459.26; VAT round(4,459.26 × 19 %) = 847.26
    assert (bill.net, bill.tax, bill.total) == (D("4459.26"), D("847.26"), D("5306.52"))


def test_a_late_event_is_an_adjustment_at_its_months_rate() -> None:
    terms = Terms(currency="CNY", fx_rate=D("7.2"))
    bill = bill_compute(
        [UsageGroup("gpt-4o", "input", D("2.5"), 1_000_000)],
        terms,
        adjustments=[(UsageGroup("gpt-4o", "output", D("10"), 100_000), D("7.1"))],
    )
    # usage 2.5 × 7.2 = 18.00; adjustment 1.0 USD × 7.1 (the original month's rate) = 7.10
    assert [(line.kind, line.amount) for line in bill.lines] == [("usage", D("18.00")), ("adjustment", D("7.10"))]
    assert bill.net == D("25.10")


currencies = st.sampled_from(["USD", "CNY", "EUR", "JPY", "KWD"])
groups = st.lists(
    st.builds(
        UsageGroup,
        st.sampled_from(["gpt-4o", "o3", "claude"]),
        st.sampled_from(["input", "cached_input", "cache_write", "output", "reasoning"]),
        st.decimals(min_value=0, max_value=100, places=6),
        st.integers(min_value=0, max_value=10**10),
    ),
    max_size=12,
)


@given(
    groups=groups,
    currency=currencies,
    fx=st.decimals(min_value="0.001", max_value=2000, places=6),
    discount=st.decimals(min_value=0, max_value=100, places=2),
    tax=st.decimals(min_value=0, max_value=30, places=2),
    inclusive=st.booleans(),
    commitment=st.decimals(min_value=0, max_value=10**6, places=0),
    tier=st.decimals(min_value=0, max_value=10**5, places=0),
)
def test_bill_invariants(groups, currency, fx, discount, tax, inclusive, commitment, tier) -> None:  # type: ignore[no-untyped-def]
    terms = Terms(
        currency=currency,
        fx_rate=fx,
        discount_percent=discount,
        tax_percent=tax,
        tax_inclusive=inclusive,
        minimum_monthly_commitment=commitment,
        volume_tiers=((tier, D(3)), (tier * 2 + 1, D(5))),
    )
    bill = bill_compute(groups, terms)
    digits = minor_units(currency)
    assert bill.net == sum((line.amount for line in bill.lines), D(0))
    for amount in [*(line.amount for line in bill.lines), bill.net, bill.tax, bill.total]:
        assert amount == quantize_money(amount, currency), amount
        assert max(0, -amount.as_tuple().exponent) <= digits  # type: ignore[operator]
    rate = tax / 100
    if inclusive:
        assert bill.tax == quantize_money(bill.net * rate / (1 + rate), currency) and bill.total == bill.net
    else:
        assert bill.tax == quantize_money(bill.net * rate, currency) and bill.total == bill.net + bill.tax
    assert all(line.amount != 0 for line in bill.lines if line.kind != "usage")
    assert bill_compute(list(reversed(groups)), terms).net == bill.net  # the same events, the same bill
