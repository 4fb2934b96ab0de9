"""The tenant dashboard (portal overview): month-to-date spend and forecast in the billing currency beside the
budget gauges and their projected exhaustion, a 30-day daily cost chart, breakdowns by project, model, feature,
end user and API key (top five and "others"), the estimated share, the latest alerts and anomalies. A developer sees
the same for their projects, in USD, without bills and budgets."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from django.utils import timezone

from metering.charts import bar_chart
from metering.selectors import UsageQuery, usage_aggregate, usage_counts, usage_scope_projects

BREAKDOWNS = ("project", "model", "feature", "end_user", "api_key")
TOP = 5


def _breakdown(query: UsageQuery, dimension: str) -> dict[str, Any]:
    rows = usage_aggregate(
        UsageQuery(query.tenant, query.start, query.end, [dimension], project_ids=query.project_ids)
    )["rows"]
    rows.sort(key=lambda r: r["cost"], reverse=True)
    total = sum((r["cost"] for r in rows), Decimal(0))
    top = [
        {
            "label": r[dimension],
            "cost": r["cost"],
            "requests": r["requests"],
            "share": (r["cost"] / total * 100) if total else Decimal(0),
        }
        for r in rows[:TOP]
    ]
    rest = rows[TOP:]
    others = None
    if rest:
        cost = sum((r["cost"] for r in rest), Decimal(0))
        others = {
            "count": len(rest),
            "cost": cost,
            "requests": sum(r["requests"] for r in rest),
            "share": (cost / total * 100) if total else Decimal(0),
        }
    return {"dimension": dimension, "rows": top, "others": others, "total": total}


def _exhaustion(state: Any, now: dt.datetime, zone: dt.tzinfo) -> dt.date | None:
    """The day, in the tenant's time zone, a budget runs out at the pace of its period so far; None when it will
    not within the period, or when it already has (the page says so instead)."""
    if not state.limit or state.spent <= 0 or state.spent >= state.limit:
        return None
    period_days = Decimal((state.period_end - state.period_start).days + 1)
    start = dt.datetime.combine(state.period_start, dt.time(), tzinfo=zone)
    elapsed = max(Decimal((now - start).total_seconds()) / 86400, Decimal("0.01"))
    days_left = (state.limit - state.spent) / (state.spent / elapsed)
    if days_left > period_days - elapsed:
        return None
    return (now + dt.timedelta(days=float(days_left))).astimezone(zone).date()


def dashboard(user: Any, tenant: Any, *, now: dt.datetime | None = None) -> dict[str, Any]:
    from tenants.selectors import can_see_billing

    now = now or timezone.now()
    today = now.astimezone(zoneinfo.ZoneInfo(tenant.timezone)).date()
    project_ids = usage_scope_projects(tenant=tenant, user=user)
    month = UsageQuery(tenant, today.replace(day=1), today, [], project_ids=project_ids)
    days = usage_aggregate(UsageQuery(tenant, today - dt.timedelta(days=29), today, ["day"], project_ids=project_ids))
    by_day = {row["day"]: row["cost"] for row in days["rows"]}
    points = [
        (day.isoformat(), by_day.get(day.isoformat(), Decimal(0)))
        for day in (today - dt.timedelta(days=n) for n in range(29, -1, -1))
    ]
    peak = max(points, key=lambda p: p[1]) if any(v for _d, v in points) else None
    mtd = usage_aggregate(month)["totals"]
    _count, estimated = usage_counts(
        UsageQuery(tenant, month.start, month.end, [], filters={"estimated": True}, project_ids=project_ids)
    )
    context: dict[str, Any] = {
        "chart": bar_chart(points),
        "peak": peak,
        "mtd_usd": mtd["cost"],
        "mtd_requests": mtd["requests"],
        "estimated_usd": estimated,
        "estimated_share": (estimated / mtd["cost"] * 100) if mtd["cost"] else Decimal(0),
        "breakdowns": [_breakdown(month, dimension) for dimension in BREAKDOWNS],
        "month_start": month.start,
        "today": today,
        "sees_billing": False,
    }
    if can_see_billing(user, tenant):
        from billing.bills import BillBlocked, bill_preview
        from billing.budgets import budget_states
        from billing.models import Budget, BudgetAlert
        from metering.models import Anomaly

        try:
            preview = bill_preview(tenant, now=now)
        except BillBlocked:
            preview = None
        states = budget_states(list(Budget.objects.filter(tenant=tenant, active=True).select_related("tenant")))
        zone = zoneinfo.ZoneInfo(tenant.timezone)
        context.update(
            sees_billing=True,
            preview=preview,
            draft=preview.bills[0] if preview else None,
            budgets=[
                {
                    "state": s,
                    "used_up": bool(s.limit) and s.spent >= s.limit,
                    "exhausted_on": _exhaustion(s, now, zone),
                }
                for s in states
            ],
            alerts=list(BudgetAlert.objects.filter(budget__tenant=tenant).select_related("budget")[:5]),
            anomalies=list(Anomaly.objects.filter(tenant=tenant).order_by("-window_start")[:5]),
        )
    return context
