"""Demo contracts in several currencies (seeded before usage, so events are rated with them at ingestion)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing.contracts import contract_activate, contract_create
from billing.models import Contract
from tenants.models import Tenant

CONTRACTS = {
    "acme": {
        "billing_currency": "CNY",
        "markup_percent": Decimal(15),
        "discount_percent": Decimal(10),
        "tax_percent": Decimal(6),
        "tax_label": "增值税 6%",
        "invoice_type": "vat_special",
        "rate_overrides": [{"model": "deepseek-chat", "input": "0.25", "cached_input": "0.06", "output": "1"}],
        "payment_terms_days": 30,
    },
    "globex": {
        "billing_currency": "USD",
        "markup_percent": Decimal(8),
        "volume_tiers": [{"from_amount": "500", "percent": "3"}, {"from_amount": "2000", "percent": "6"}],
        "payment_terms_days": 45,
    },
    "initech": {
        "billing_currency": "EUR",
        "markup_percent": Decimal(12),
        "tax_percent": Decimal(19),
        "tax_label": "MwSt. 19%",
        "payment_terms_days": 14,
    },
    "umbrella": {
        "billing_currency": "JPY",
        "markup_percent": Decimal(10),
        "tax_percent": Decimal(10),
        "tax_label": "消費税 10%",
        "tax_inclusive": True,
        "minimum_monthly_commitment": Decimal(50000),
        "payment_terms_days": 30,
    },
}


def close_past_months(months: int = 3) -> list[str]:
    """Close the finished months of the demo's usage (after the FX rates are in), as the beat would."""
    from django.utils import timezone

    from billing.bills import month_add, months_close

    this_month = timezone.now().date().replace(day=1)
    lines = []
    for back in range(months, 0, -1):
        period = month_add(this_month, -back)
        for result in months_close(period=period, now=timezone.now()):
            if result.bills or result.error:
                lines.append(f"{result.tenant.slug} {period:%Y-%m}: {result.status}")
    return lines


def seed() -> int:
    created = 0
    for slug, terms in CONTRACTS.items():
        tenant = Tenant.objects.get(slug=slug)
        if Contract.objects.filter(tenant=tenant).exists():
            continue
        contract = contract_create(actor=None, tenant=tenant, starts_on=dt.date(2026, 1, 1), **terms)
        contract_activate(actor=None, contract=contract)
        created += 1
    return created
