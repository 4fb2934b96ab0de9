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


DEMO_BUDGETS = [
    # tenant, name, scope, value, period, amount, tokens, action, downgrade map
    ("acme", "Acme monthly spend", "tenant", "", "month", Decimal(300), None, "notify", {}),
    (
        "acme",
        "Research agents",
        "project",
        "research",
        "month",
        Decimal(60),
        None,
        "downgrade",
        {"claude-sonnet-4": "claude-3-5-haiku", "o3": "gpt-4o-mini"},
    ),
    ("acme", "Staging daily tokens", "environment", "staging", "day", None, 50_000, "block", {}),
    ("globex", "Globex monthly spend", "tenant", "", "month", Decimal(25), None, "notify", {}),
    ("globex", "globex-user-007", "end_user", "globex-user-007", "week", Decimal(2), None, "block", {}),
    ("umbrella", "Translation monthly", "project", "translate", "month", Decimal(3000), None, "notify", {}),
]


def seed_budgets() -> list[str]:
    """Budgets over the demo usage (counters rebuilt from the rollups) and the alerts their spend has crossed."""
    from django.utils import timezone

    from billing.budgets import budget_create, local_day, period_bounds, thresholds_check
    from billing.models import Budget, NotificationChannel
    from core.redis import redis_client

    if Budget.objects.exists():
        return []
    lines = []
    for slug, name, scope, value, period, amount, tokens, action, mapping in DEMO_BUDGETS:
        tenant = Tenant.objects.get(slug=slug)
        mailbox, _created = NotificationChannel.objects.get_or_create(
            tenant=tenant, name="Finance mailbox", defaults={"kind": "email", "target": f"finance@{slug}.example"}
        )
        budget = budget_create(
            actor=None,
            tenant=tenant,
            name=name,
            scope=scope,
            scope_value=value,
            period=period,
            limit_amount=amount,
            limit_tokens=tokens,
            thresholds=[50, 80, 95, 100],
            action_at_limit=action,
            downgrade_map=mapping,
        )
        start, end = period_bounds(period, local_day(timezone.now(), tenant.timezone))
        from billing.budgets import counter_key, counter_rebuild

        counter_rebuild(budget, start, end)
        cost, used = (int(v or 0) for v in redis_client().hmget(counter_key(budget.pk, start), "cost", "tokens"))
        fired = thresholds_check(budget.pk, start, 0, cost, 0, used)
        # From now on its alerts also go to the finance mailbox (the ones crossed while seeding stay in the portal).
        budget.channels.add(mailbox)
        lines.append(f"{slug} {name}: {len(fired)} alerts")
    return lines
