"""Anomaly scans (SPEC §6). Hourly: an end user's hourly cost > 5× their 7-day hourly mean; a request's tokens
> 10× its project's mean; bursts of identical (prompt_template, end_user) calls. Daily (per tenant-local day):
day cost > 2× the trailing 7-day mean; sustained usage between 00:00 and 05:00 where the nights before were
near zero; month-to-date growth > 50 % over the same days of the previous month.

Baselines come from the rollups; the hour under scan from its events (tenant and time bounded). Each anomaly is
stored once per (tenant, kind, scope, window) and sent to the tenant's channels."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Sum
from django.utils import timezone

from metering.models import Anomaly, EndUserRollup, UsageEvent, UsageRollup

logger = logging.getLogger(__name__)

DAY_SPIKE = Decimal(2)
END_USER_SPIKE = Decimal(5)
REQUEST_OUTLIER = Decimal(10)
MONTH_GROWTH = Decimal("1.5")
# Floors so that tiny absolute amounts (a new user's first call, a quiet tenant) never raise an alarm.
MIN_DAY_COST = Decimal("0.50")  # USD
MIN_HOURLY_BASELINE = Decimal("0.05")  # USD per hour
MIN_BURST_CALLS = 50  # identical calls in one hour
BURST_FACTOR = 10
MIN_NIGHT_REQUESTS = 30
NEAR_ZERO_NIGHT = Decimal(2)  # mean requests per night before
MIN_PROJECT_REQUESTS = 100  # a project's baseline needs this many requests
MIN_MONTH_COST = Decimal(1)
TOKENS = F("input_tokens") + F("cached_input_tokens") + F("cache_write_tokens") + F("output_tokens")


def _zone(tenant: Any) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.timezone)


def _ratio(observed: Decimal, expected: Decimal) -> Decimal:
    return (observed / expected).quantize(Decimal("0.01")) if expected else Decimal("999999.99")


def _record(
    tenant: Any,
    kind: str,
    scope: str,
    start: dt.datetime,
    end: dt.datetime,
    observed: Decimal,
    expected: Decimal,
    unit: str = "USD",
    **details: Any,
) -> Anomaly | None:
    try:
        with transaction.atomic():
            anomaly = Anomaly.objects.create(
                tenant=tenant,
                kind=kind,
                scope=scope,
                window_start=start,
                window_end=end,
                observed=observed,
                expected=expected,
                ratio=min(_ratio(observed, expected), Decimal("999999.99")),
                unit=unit,
                details=details,
            )
    except IntegrityError:
        return None  # found before: one anomaly per window
    _notify(anomaly)
    return anomaly


def _notify(anomaly: Anomaly) -> None:
    from billing.channels import deliveries_queue
    from billing.models import NotificationChannel

    channels = list(NotificationChannel.objects.filter(tenant=anomaly.tenant, enabled=True))
    if channels:
        payload = {
            "type": "anomaly",
            "tenant": anomaly.tenant.slug,
            "kind": anomaly.kind,
            "scope": anomaly.scope,
            "window_start": anomaly.window_start.isoformat(),
            "window_end": anomaly.window_end.isoformat(),
            "observed": str(anomaly.observed),
            "expected": str(anomaly.expected),
            "ratio": str(anomaly.ratio),
            "unit": anomaly.unit,
        }
        deliveries_queue(channels=channels, payload=payload, subject="anomaly")


# --- hourly --------------------------------------------------------------------------------------------


def scan_hour(tenant: Any, hour_end: dt.datetime) -> list[Anomaly]:
    """The hour [hour_end − 1 h, hour_end)."""
    start = hour_end - dt.timedelta(hours=1)
    local_day = start.astimezone(_zone(tenant)).date()
    baseline_days = (local_day - dt.timedelta(days=7), local_day - dt.timedelta(days=1))
    events = UsageEvent.objects.filter(tenant_id=tenant.pk, occurred_at__gte=start, occurred_at__lt=hour_end)
    found: list[Anomaly | None] = []

    # an end user's hourly cost > 5× their 7-day hourly mean
    hourly = list(events.exclude(end_user="").values("end_user").annotate(cost=Sum("cost")).filter(cost__gt=0))
    # Every end user's week in one read (a tenant's hour can hold thousands of end users).
    weeks = (
        dict(
            EndUserRollup.objects.filter(tenant_id=tenant.pk, day__gte=baseline_days[0], day__lte=baseline_days[1])
            .values("end_user")
            .annotate(cost=Sum("cost"))
            .values_list("end_user", "cost")
            .order_by()
        )
        if hourly
        else {}
    )
    for row in hourly:
        mean = (weeks.get(row["end_user"]) or Decimal(0)) / (7 * 24)
        expected = max(mean, MIN_HOURLY_BASELINE)  # a new or near-silent user is compared with the floor
        if row["cost"] > END_USER_SPIKE * expected:
            found.append(
                _record(
                    tenant,
                    Anomaly.Kind.END_USER_SPIKE,
                    f"end_user:{row['end_user']}",
                    start,
                    hour_end,
                    row["cost"],
                    expected,
                )
            )

    # a request's tokens > 10× its project's mean tokens per request
    from tenants.models import Project

    slugs = dict(Project.objects.filter(tenant_id=tenant.pk).values_list("pk", "slug"))
    by_project = events.values("project_id").annotate(biggest=Max(TOKENS))
    for big in by_project:
        base = UsageRollup.objects.filter(
            tenant_id=tenant.pk,
            grain="day",
            project_id=big["project_id"],
            day__gte=baseline_days[0],
            day__lte=baseline_days[1],
        ).aggregate(tokens=Sum(TOKENS), requests=Sum("requests"))
        if not base["requests"] or base["requests"] < MIN_PROJECT_REQUESTS:
            continue
        mean = Decimal(base["tokens"] or 0) / base["requests"]
        if big["biggest"] and big["biggest"] > REQUEST_OUTLIER * mean:
            oversized = (
                events.filter(project_id=big["project_id"])
                .annotate(tokens=TOKENS)
                .filter(tokens__gt=REQUEST_OUTLIER * mean)
            )
            count = oversized.count()
            sample = list(oversized.order_by("-tokens").values_list("event_id", flat=True)[:5])
            found.append(
                _record(
                    tenant,
                    Anomaly.Kind.REQUEST_OUTLIER,
                    f"project:{slugs.get(big['project_id'], big['project_id'])}",
                    start,
                    hour_end,
                    Decimal(big["biggest"]),
                    mean.quantize(Decimal("0.01")),
                    unit="tokens",
                    requests=count,
                    events=sample,
                )
            )

    # bursts of identical (prompt_template, end_user) calls
    bursts = list(
        events.exclude(prompt_template="")
        .exclude(end_user="")
        .values("prompt_template", "end_user")
        .annotate(calls=Count("id"))
        .filter(calls__gte=MIN_BURST_CALLS)
    )
    earlier: dict[tuple[str, str], int] = {}
    if bursts:  # the same calls in the week before, for every burst in one read of that week
        week_start = dt.datetime.combine(baseline_days[0], dt.time(), tzinfo=_zone(tenant))
        earlier = {
            (row["prompt_template"], row["end_user"]): row["calls"]
            for row in UsageEvent.objects.filter(
                tenant_id=tenant.pk,
                occurred_at__gte=week_start,
                occurred_at__lt=start,
                prompt_template__in={b["prompt_template"] for b in bursts},
                end_user__in={b["end_user"] for b in bursts},
            )
            .values("prompt_template", "end_user")
            .annotate(calls=Count("id"))
            .order_by()
        }
    for burst in bursts:
        before = earlier.get((burst["prompt_template"], burst["end_user"]), 0)
        expected = max(Decimal(before) / (7 * 24), Decimal(1))  # at least one call an hour
        if burst["calls"] > BURST_FACTOR * expected:
            found.append(
                _record(
                    tenant,
                    Anomaly.Kind.IDENTICAL_BURST,
                    f"prompt_template:{burst['prompt_template']}/end_user:{burst['end_user']}",
                    start,
                    hour_end,
                    Decimal(burst["calls"]),
                    expected.quantize(Decimal("0.01")),
                    unit="calls",
                )
            )
    return [a for a in found if a is not None]


# --- daily ---------------------------------------------------------------------------------------------


def _day_cost(tenant: Any, first: dt.date, last: dt.date) -> Decimal:
    return UsageRollup.objects.filter(tenant_id=tenant.pk, grain="day", day__gte=first, day__lte=last).aggregate(
        cost=Sum("cost")
    )["cost"] or Decimal(0)


def _night_requests(tenant: Any, day: dt.date) -> int:
    zone = _zone(tenant)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day, dt.time(5), tzinfo=zone)
    return int(
        UsageRollup.objects.filter(tenant_id=tenant.pk, grain="hour", bucket__gte=start, bucket__lt=end).aggregate(
            requests=Sum("requests")
        )["requests"]
        or 0
    )


def scan_day(tenant: Any, day: dt.date) -> list[Anomaly]:
    """The tenant-local day `day` (complete)."""
    zone = _zone(tenant)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = start + dt.timedelta(days=1)
    found: list[Anomaly | None] = []

    cost = _day_cost(tenant, day, day)
    mean = _day_cost(tenant, day - dt.timedelta(days=7), day - dt.timedelta(days=1)) / 7
    if cost >= MIN_DAY_COST and mean > 0 and cost > DAY_SPIKE * mean:
        found.append(_record(tenant, Anomaly.Kind.DAILY_COST_SPIKE, "tenant", start, end, cost, mean))

    night = _night_requests(tenant, day)
    if night >= MIN_NIGHT_REQUESTS:
        before = Decimal(sum(_night_requests(tenant, day - dt.timedelta(days=n)) for n in range(1, 8))) / 7
        if before <= NEAR_ZERO_NIGHT:
            found.append(
                _record(
                    tenant,
                    Anomaly.Kind.NIGHT_USAGE,
                    "tenant",
                    start,
                    start + dt.timedelta(hours=5),
                    Decimal(night),
                    before.quantize(Decimal("0.01")),
                    unit="requests",
                )
            )

    month_start = day.replace(day=1)
    previous_start = (month_start - dt.timedelta(days=1)).replace(day=1)
    previous_end = min(previous_start + dt.timedelta(days=day.day - 1), month_start - dt.timedelta(days=1))
    this_month = _day_cost(tenant, month_start, day)
    last_month = _day_cost(tenant, previous_start, previous_end)
    if last_month >= MIN_MONTH_COST and this_month > MONTH_GROWTH * last_month:
        found.append(
            _record(
                tenant,
                Anomaly.Kind.MONTH_GROWTH,
                "tenant",
                dt.datetime.combine(month_start, dt.time(), tzinfo=zone),
                end,
                this_month,
                last_month,
                days=day.day,
            )
        )
    return [a for a in found if a is not None]


def anomalies_scan(*, now: dt.datetime | None = None, tenants: Any = None) -> list[Anomaly]:
    """Hourly beat: the last complete hour of every tenant, and each tenant's previous local day (a rescan
    finds nothing new)."""
    from metering.services import rollups_flush
    from tenants.models import Tenant

    now = now or timezone.now()
    rollups_flush()
    hour_end = now.replace(minute=0, second=0, microsecond=0)
    found = []
    for tenant in tenants if tenants is not None else Tenant.objects.filter(status="active"):
        found += scan_hour(tenant, hour_end)
        found += scan_day(tenant, now.astimezone(_zone(tenant)).date() - dt.timedelta(days=1))
    return found


def anomalies_backfill(*, hours: int, now: dt.datetime | None = None, tenants: Any = None) -> list[Anomaly]:
    """Scan the last `hours` hours and their days (demo data, or after an outage)."""
    now = now or timezone.now()
    found = []
    for back in range(hours, -1, -1):
        found += anomalies_scan(now=now - dt.timedelta(hours=back), tenants=tenants)
    return found
