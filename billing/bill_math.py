"""The computation of a bill, exactly in the order of SPEC §7 (steps 2–8), in Decimal.

Pure: takes the period's usage as (model, bucket, unit price, tokens) groups, the contract's terms and the
FX rate, and returns the lines and totals. Persistence, FX selection and closing live in the bill services.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from billing.money import quantize_money

MILLION = Decimal(1_000_000)
BUCKETS = ("input", "cached_input", "cache_write", "output", "reasoning")


@dataclass(frozen=True)
class UsageGroup:
    """Tokens of one (model, bucket, unit price) over the period; unit_price per 1M tokens in USD."""

    model: str
    bucket: str
    unit_price: Decimal
    quantity: int
    project: str | None = None
    # the month the tokens belong to (adjustments) and the part of the quantity that is estimated
    period: dt.date | None = None
    estimated_quantity: int = 0


@dataclass(frozen=True)
class Terms:
    currency: str
    fx_rate: Decimal
    discount_percent: Decimal = Decimal(0)
    tax_percent: Decimal = Decimal(0)
    tax_inclusive: bool = False
    minimum_monthly_commitment: Decimal = Decimal(0)
    # [(from_amount, percent)], ascending, in the billing currency (graduated).
    volume_tiers: tuple[tuple[Decimal, Decimal], ...] = ()


@dataclass
class Line:
    kind: str  # usage | volume_tier | discount | commitment | adjustment
    amount: Decimal
    model: str | None = None
    bucket: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    amount_usd: Decimal | None = None
    project: str | None = None
    description: str = ""
    period: dt.date | None = None
    fx_rate: Decimal | None = None
    estimated_quantity: int = 0


@dataclass
class BillTotals:
    lines: list[Line] = field(default_factory=list)
    usage_subtotal: Decimal = Decimal(0)
    net: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    # the share of the usage and adjustment amounts that comes from estimated events (SPEC §5.3)
    estimated_amount: Decimal = Decimal(0)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def usage_line(group: UsageGroup, terms: Terms, kind: str = "usage") -> Line:
    exact_usd = group.quantity * group.unit_price / MILLION
    return Line(
        kind=kind,
        model=group.model,
        bucket=group.bucket,
        quantity=group.quantity,
        unit_price=group.unit_price,
        amount=quantize_money(exact_usd * terms.fx_rate, terms.currency),  # from the exact product (step 2)
        amount_usd=exact_usd.quantize(Decimal("0.000001")),
        project=group.project,
        description=f"{group.model} · {group.bucket}",
        period=group.period,
        fx_rate=terms.fx_rate,
        estimated_quantity=group.estimated_quantity,
    )


def bill_compute(
    groups: list[UsageGroup], terms: Terms, adjustments: list[tuple[UsageGroup, Decimal]] | None = None
) -> BillTotals:
    """adjustments: (group, the FX rate of its original month)."""
    currency = terms.currency
    bill = BillTotals()
    # 2–3. usage lines (a bucket with zero tokens has no line) and their subtotal
    for group in sorted(groups, key=lambda g: (g.project or "", g.model, BUCKETS.index(g.bucket), g.unit_price)):
        if group.quantity:
            bill.lines.append(usage_line(group, terms))
    bill.usage_subtotal = sum((line.amount for line in bill.lines), Decimal(0))
    # 4. graduated volume tiers, one negative line per tier reached
    tier_total = Decimal(0)
    tiers = list(terms.volume_tiers)
    for index, (from_amount, percent) in enumerate(tiers):
        if from_amount >= bill.usage_subtotal:
            continue
        next_from = tiers[index + 1][0] if index + 1 < len(tiers) else None
        upper = bill.usage_subtotal if next_from is None else min(bill.usage_subtotal, next_from)
        amount = -quantize_money((upper - from_amount) * percent / 100, currency)
        if amount:
            bill.lines.append(
                Line(
                    kind="volume_tier",
                    amount=amount,
                    description=f"Volume tier from {_plain(from_amount)}: {_plain(percent)} %",
                )
            )
            tier_total += amount
    # 5. contract discount
    discounted_base = bill.usage_subtotal + tier_total
    discount = -quantize_money(discounted_base * terms.discount_percent / 100, currency)
    if discount:
        bill.lines.append(
            Line(kind="discount", amount=discount, description=f"Discount {_plain(terms.discount_percent)} %")
        )
    # 6. minimum commitment
    committed = discounted_base + discount
    if committed < terms.minimum_monthly_commitment:
        bill.lines.append(
            Line(
                kind="commitment",
                amount=terms.minimum_monthly_commitment - committed,
                description="Minimum monthly commitment",
            )
        )
    # 7. adjustments (late events of closed months, corrections of estimates), priced as in step 2
    for group, month_rate in adjustments or []:
        if group.quantity:
            month_terms = Terms(currency=currency, fx_rate=month_rate)
            bill.lines.append(usage_line(group, month_terms, kind="adjustment"))
    estimated = sum(
        (
            Decimal(line.estimated_quantity) * (line.unit_price or 0) / MILLION * (line.fx_rate or 0)
            for line in bill.lines
            if line.estimated_quantity
        ),
        Decimal(0),
    )
    bill.estimated_amount = quantize_money(estimated, currency)
    # 8. net, tax, total
    bill.net = sum((line.amount for line in bill.lines), Decimal(0))
    rate = terms.tax_percent / 100
    if terms.tax_inclusive:
        bill.tax = quantize_money(bill.net * rate / (1 + rate), currency)
        bill.total = bill.net
    else:
        bill.tax = quantize_money(bill.net * rate, currency)
        bill.total = bill.net + bill.tax
    return bill
