"""The ingest path's in-memory threshold pre-check never misses a crossing the exact check would fire."""

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.budgets import COST_UNIT, SPENT_DIGITS, BudgetRule, TenantBudgets, _may_have_crossed
from billing.models import Budget

THRESHOLDS = st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=5, unique=True)


def exact_percent(budget: Budget, units: tuple[int, int], rate: Decimal) -> Decimal:
    """The percent thresholds_check decides with (billing.budgets._state, without raises)."""
    if budget.limit_tokens is not None:
        spent, limit = Decimal(units[1]), Decimal(budget.limit_tokens)
    else:
        spent, limit = (Decimal(units[0]) * COST_UNIT * rate).quantize(SPENT_DIGITS), Decimal(budget.limit_amount)
    return (spent / limit * 100).quantize(Decimal("0.01"))


@settings(max_examples=400, deadline=None)
@given(
    tokens_budget=st.booleans(),
    limit=st.integers(min_value=1, max_value=10**9),
    cents=st.integers(min_value=0, max_value=99),
    thresholds=THRESHOLDS,
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("50000"), places=6),
    before=st.integers(min_value=0, max_value=10**19),
    step=st.integers(min_value=1, max_value=10**18),
)
def test_every_crossing_the_exact_check_fires_passes_the_pre_check(
    tokens_budget: bool, limit: int, cents: int, thresholds: list[int], rate: Decimal, before: int, step: int
) -> None:
    budget = Budget(
        id=1,
        scope="tenant",
        period="month",
        thresholds=thresholds,
        limit_tokens=limit if tokens_budget else None,
        limit_amount=None if tokens_budget else Decimal(limit) + Decimal(cents) / 100,
    )
    index = TenantBudgets("UTC", (BudgetRule(1, "tenant", "", None, "month"),), {}, {1: budget}, rate=rate)
    units_before, units_after = (before, before // 7), (before + step, (before + step) // 7)
    percent_before, percent_after = exact_percent(budget, units_before, rate), exact_percent(budget, units_after, rate)
    fires = any(percent_before < t <= percent_after for t in thresholds)
    if fires:
        assert index.may_cross(1, units_before, units_after)
        assert _may_have_crossed(budget, units_before, units_after, rate)  # the pre-check thresholds_check keeps


def test_targets_match_the_rules_and_are_remembered() -> None:
    rules = (
        BudgetRule(1, "tenant", "", None, "month"),
        BudgetRule(2, "project", "", 7, "week"),
        BudgetRule(3, "environment", "staging", None, "day"),
    )
    index = TenantBudgets("UTC", rules, {}, {})
    day = dt.date(2026, 11, 19)  # a Thursday
    found = index.targets(7, None, "production", "u1", day)
    assert found == (
        (1, dt.date(2026, 11, 1), "mlb:1:20261101"),
        (2, dt.date(2026, 11, 16), "mlb:2:20261116"),
    )
    assert index.targets(8, None, "staging", "u1", day) == (
        (1, dt.date(2026, 11, 1), "mlb:1:20261101"),
        (3, day, "mlb:3:20261119"),
    )
    assert index.targets(7, None, "production", "u1", day) is found
