"""Reads of usage (SPEC §5.5): aggregates from the rollups, raw events for what rollups cannot answer."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet, Sum

from metering.models import EndUserRollup, UsageEvent, UsageRollup
from tenants.models import ApiKey, Project, Tenant

GROUP_BY = ("day", "model", "project", "feature", "end_user", "api_key", "department", "environment")
FILTERS = ("project", "model", "feature", "end_user", "api_key", "department", "environment", "estimated")
TOKEN_SUMS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
MAX_DAYS = 366


@dataclass
class UsageQuery:
    tenant: Tenant
    start: dt.date
    end: dt.date
    group_by: list[str]
    filters: dict[str, Any] = field(default_factory=dict)
    # None: every project of the tenant; otherwise only these (developers, project keys).
    project_ids: list[int] | None = None


def tenant_has_usage(tenant_id: int) -> bool:
    """Whether any usage event of the tenant is stored (one index probe)."""
    return UsageEvent.objects.filter(tenant_id=tenant_id).exists()


def usage_names(*, tenant_id: int, project_id: int | None = None, api_key_id: int | None = None) -> bool:
    """Whether stored usage names this project or API key (from the rollups, with pending deltas folded in: the
    events have no index by project or key)."""
    from metering.services import rollups_flush

    rollups_flush()
    rows = UsageRollup.objects.filter(tenant_id=tenant_id)
    if project_id is not None:
        rows = rows.filter(project_id=project_id)
    if api_key_id is not None:
        rows = rows.filter(api_key_id_value=api_key_id)
    return rows.exists()


def _billable_days(tenant_id: int, start: dt.datetime, stop: dt.datetime) -> QuerySet[UsageRollup]:
    """The daily rollups of billable usage on the tenant-local days from `start` to `stop` (local midnights)."""
    return UsageRollup.objects.filter(
        tenant_id=tenant_id, grain=UsageRollup.Grain.DAY, bucket__gte=start, bucket__lt=stop, billable=True
    )


def billable_usage(*, tenant_id: int, start: dt.datetime, stop: dt.datetime) -> list[dict[str, Any]]:
    """Billable, priced usage of the tenant-local days from `start` to `stop` (local midnights), summed by
    (project, model, provider, price-book row, estimated): tokens per bucket, and `first`, the start of the
    earliest day with such usage. From the daily rollups: the caller folds pending deltas in first
    (`metering.services.rollups_flush`, once for all the reads of a bill)."""
    rows = (
        _billable_days(tenant_id, start, stop)
        .filter(rating_status=UsageEvent.RatingStatus.PRICED, requests__gt=0)
        .order_by()
        .values("project_id", "model", "provider", "price_id_value", "estimated")
        .annotate(
            first=Min("bucket"),
            input=Sum("input_tokens"),
            cached_input=Sum("cached_input_tokens"),
            cache_write=Sum("cache_write_tokens"),
            output=Sum("output_tokens"),
            reasoning=Sum("reasoning_tokens"),
        )
    )
    return [dict(row) for row in rows]


def billable_usage_exists(*, tenant_id: int, start: dt.datetime, stop: dt.datetime) -> bool:
    """Whether any billable event falls in the tenant-local days from `start` to `stop`, priced or not (from the
    rollups — the events have no index by billable; the caller folds pending deltas in first)."""
    return _billable_days(tenant_id, start, stop).filter(requests__gt=0).exists()


def billable_unpriced(*, tenant_id: int, start: dt.datetime, stop: dt.datetime) -> bool:
    """Whether billable events without a price fall in the tenant-local days from `start` to `stop` (from the
    rollups; the caller folds pending deltas in first)."""
    return _billable_days(tenant_id, start, stop).filter(unpriced_requests__gt=0).exists()


def usage_scope_projects(*, tenant: Tenant, user: Any = None, api_key: ApiKey | None = None) -> list[int] | None:
    if api_key is not None:
        return [api_key.project_id]
    from tenants.selectors import full_access_tenant_ids, projects_for_user

    if full_access_tenant_ids(user).filter(pk=tenant.pk).exists():
        return None
    return list(projects_for_user(user, tenant).values_list("pk", flat=True))


def _rollup_source(query: UsageQuery) -> str:
    dims = set(query.group_by) | {k for k in query.filters if k != "estimated"}
    if "end_user" in dims:
        # The end-user rollup is per (tenant, end user, day) only.
        if dims <= {"day", "end_user"} and query.project_ids is None and "estimated" not in query.filters:
            return "end_user"
        return "events"
    return "usage"  # the usage rollups keep estimated events apart


_FIELD = {
    "usage": {
        "day": "day",
        "model": "model",
        "project": "project__slug",
        "feature": "feature",
        "api_key": "api_key_id_value",
        "department": "project__department__code",
        "environment": "environment",
    },
    "end_user": {"day": "day", "end_user": "end_user"},
    "events": {
        "day": "local_day",
        "model": "model",
        "project": "project__slug",
        "feature": "feature",
        "end_user": "end_user",
        "api_key": "api_key__prefix",
        "department": "project__department__code",
        "environment": "environment",
    },
}


def _base(query: UsageQuery, source: str, grain: str = UsageRollup.Grain.DAY) -> QuerySet[Any]:
    rows: QuerySet[Any]
    if source == "usage":
        rows = UsageRollup.objects.filter(tenant=query.tenant, grain=grain, day__gte=query.start, day__lte=query.end)
    elif source == "end_user":
        rows = EndUserRollup.objects.filter(tenant=query.tenant, day__gte=query.start, day__lte=query.end)
    else:
        rows = events_in_days(query.tenant, query.start, query.end)
    if query.project_ids is not None and source != "end_user":
        rows = rows.filter(**{"project_id__in": query.project_ids})
    fields = _FIELD[source]
    for name, value in query.filters.items():
        if name == "estimated":  # the usage rollups and the events (see _rollup_source)
            rows = rows.filter(**{"estimated": value})
        elif name == "api_key" and source == "usage":
            key = ApiKey.objects.filter(tenant=query.tenant, prefix=value).first()
            rows = rows.filter(**{"api_key_id_value": key.pk if key else -1})
        else:
            rows = rows.filter(**{fields[name]: value})
    return rows


def events_in_days(tenant: Tenant, start: dt.date, end: dt.date) -> QuerySet[UsageEvent]:
    """Events of the tenant-local days start..end (bounds computed in the tenant's time zone)."""
    from django.db.models.functions import TruncDate

    zone = zoneinfo.ZoneInfo(tenant.timezone)
    lower = dt.datetime.combine(start, dt.time(), tzinfo=zone)
    upper = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return UsageEvent.objects.filter(tenant=tenant, occurred_at__gte=lower, occurred_at__lt=upper).annotate(
        local_day=TruncDate("occurred_at", tzinfo=zone)
    )


def usage_aggregate(query: UsageQuery) -> dict[str, Any]:
    from metering.services import rollups_flush

    rollups_flush()  # read-your-writes: pending deltas are folded in before any rollup is read
    source = _rollup_source(query)
    fields = _FIELD[source]
    names = [fields[dim] for dim in query.group_by]
    if source == "events":
        sums = {name: Sum(name) for name in TOKEN_SUMS} | {"requests": Count("id"), "cost": Sum("cost")}
    else:
        sums = {name: Sum(name) for name in (*TOKEN_SUMS, "requests", "cost")}
    parts = _parts(query, source)
    aggregated: list[dict[str, Any]] = []
    for rows in parts:
        aggregated += list(rows.values(*names).annotate(**sums).order_by(*names)) if names else [rows.aggregate(**sums)]
    if len(parts) != 1:
        aggregated = _merged(aggregated, names, sums)
    api_key_prefixes = {}
    if "api_key" in query.group_by and source == "usage":
        api_key_prefixes = dict(ApiKey.objects.filter(tenant=query.tenant).values_list("pk", "prefix"))
    out_rows = []
    totals: dict[str, Any] = {name: 0 for name in (*TOKEN_SUMS, "requests")} | {"cost": Decimal(0)}
    for item in aggregated:
        if item.get("requests") in (None, 0) and not names:
            continue
        row: dict[str, Any] = {}
        for dim, name in zip(query.group_by, names, strict=True):
            value = item[name]
            if dim == "api_key" and source == "usage":
                value = api_key_prefixes.get(value) if value else None
            elif dim == "day":
                value = value.isoformat()
            elif value == "":
                value = None
            row[dim] = value
        for name in (*TOKEN_SUMS, "requests"):
            row[name] = int(item[name] or 0)
            totals[name] += row[name]
        cost = Decimal(item["cost"] or 0)
        totals["cost"] += cost
        row["cost"] = cost
        if names and row["requests"] == 0 and cost == 0:
            continue  # a bucket emptied by a correction
        out_rows.append(row)
    return {"currency": "USD", "rows": out_rows, "totals": totals}


END_USER_RUNS = 10  # an end user's runs of days read apart; more, and the whole period is read at once


def _parts(query: UsageQuery, source: str) -> list[QuerySet[Any]]:
    """The rows to read for the query, in parts: for one end user's events, the runs of days they have usage on."""
    if source == "events" and "end_user" in query.filters:
        return [_base(replace(query, start=first, end=last), source) for first, last in _end_user_days(query)]
    return [_base(query, source)]


def _end_user_days(query: UsageQuery) -> list[tuple[dt.date, dt.date]]:
    """The runs of consecutive local days (first, last) on which the query's end user has usage, from the end-user
    rollups — the events read for them, not every event of the period (a user seen on three days of thirty: a
    tenth); the whole period when they are more than END_USER_RUNS runs."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in _end_user_active_days(query):
        if runs and runs[-1][1] + dt.timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs if len(runs) <= END_USER_RUNS else [(query.start, query.end)]


def _end_user_active_days(query: UsageQuery) -> list[dt.date]:
    """The local days of the query's period on which its end user has usage (end-user rollups), in order."""
    rows = EndUserRollup.objects.filter(
        tenant=query.tenant,
        day__gte=query.start,
        day__lte=query.end,
        end_user=query.filters["end_user"],
        requests__gt=0,
    )
    return sorted(rows.values_list("day", flat=True))


def _merged(items: list[dict[str, Any]], names: list[str], sums: dict[str, Any]) -> list[dict[str, Any]]:
    """Aggregates of several stretches as one: summed group by group, in the groups' order."""
    merged: dict[tuple, dict[str, Any]] = {}
    for item in items:
        key = tuple(item[name] for name in names)
        into = merged.setdefault(key, {**dict(zip(names, key, strict=True)), **dict.fromkeys(sums)})
        for name in sums:
            if item[name] is not None:
                into[name] = item[name] if into[name] is None else into[name] + item[name]
    return [merged[key] for key in sorted(merged, key=lambda k: tuple((v is None, 0 if v is None else v) for v in k))]


def daily_cost_of(query: UsageQuery, dimension: str, labels: list[Any]) -> dict[Any, dict[str, Decimal]]:
    """Cost by day (ISO date) of each of `labels`, values of `dimension` as usage_aggregate answers them (None: the
    usage without one) — a chart of the largest groups, without summing every other group by day (a tenant's
    thousands of end users are a hundred thousand end-user days a month)."""
    from metering.services import rollups_flush

    rollups_flush()
    grouped = replace(query, group_by=["day", dimension])
    source = _rollup_source(grouped)
    day, name = _FIELD[source]["day"], _FIELD[source][dimension]
    named = [label for label in labels if label is not None]
    back: dict[Any, Any] = {}
    if dimension == "api_key" and source == "usage":  # the rollups keep the key's id (0: none)
        back = dict(ApiKey.objects.filter(tenant=query.tenant, prefix__in=named).values_list("pk", "prefix"))
        match = Q(**{f"{name}__in": list(back)})
        if None in labels:
            match |= Q(**{name: 0})
            back[0] = None
    else:
        match = Q(**{f"{name}__in": named})
        if None in labels:
            match |= Q(**{name: ""}) | Q(**{f"{name}__isnull": True})
    rows = [
        row
        for part in _parts(grouped, source)
        for row in part.filter(match).values(day, name).annotate(cost=Sum("cost")).order_by()
    ]
    out: dict[Any, dict[str, Decimal]] = {}
    for row in rows:
        value = row[name]
        label = back.get(value) if back else (None if value == "" else value)
        by_day = out.setdefault(label, {})
        key = row[day].isoformat()
        by_day[key] = by_day.get(key, Decimal(0)) + Decimal(row["cost"] or 0)
    return out


def usage_counts(query: UsageQuery) -> tuple[int, Decimal]:
    """How many events match and what they cost (USD), ignoring `group_by`. From the rollups even when the query
    asks for estimated events (or for the others): the rollups count those apart, though their tokens, which
    usage_aggregate answers, must be read from the events."""
    from metering.services import rollups_flush

    ungrouped = replace(query, group_by=[])
    estimated = query.filters.get("estimated")
    others = replace(ungrouped, filters={k: v for k, v in query.filters.items() if k != "estimated"})
    source = _rollup_source(others)
    if estimated is None or source == "events":
        totals = usage_aggregate(ungrouped)["totals"]
        return int(totals["requests"]), Decimal(totals["cost"])
    rollups_flush()
    sums = _base(others, source).aggregate(
        requests=Sum("requests"),
        cost=Sum("cost"),
        flagged=Sum("estimated_requests"),
        flagged_cost=Sum("estimated_cost"),
    )
    requests, cost = int(sums["requests"] or 0), Decimal(sums["cost"] or 0)
    flagged, flagged_cost = int(sums["flagged"] or 0), Decimal(sums["flagged_cost"] or 0)
    return (flagged, flagged_cost) if estimated else (requests - flagged, cost - flagged_cost)


def project_month_usage(*, project: Project, user: Any) -> dict[str, Any]:
    """A project's usage this month so far (the tenant's calendar), in all and per API key prefix (None: events
    sent without a key), as the reader may see it."""
    from django.utils import timezone

    tenant = project.tenant
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(tenant.timezone)).date()
    query = UsageQuery(
        tenant=tenant,
        start=today.replace(day=1),
        end=today,
        group_by=["api_key"],
        filters={"project": project.slug},
        project_ids=usage_scope_projects(tenant=tenant, user=user),
    )
    found = usage_aggregate(query)
    return {
        "start": query.start,
        "end": query.end,
        "totals": found["totals"],
        "by_key": {row["api_key"]: row for row in found["rows"]},
    }


def events_for(
    query: UsageQuery, *, event_id: str | None = None, extra: dict[str, Any] | None = None
) -> QuerySet[UsageEvent]:
    rows = _base(query, "events")
    if event_id:
        rows = rows.filter(event_id=event_id)
    for name, value in (extra or {}).items():
        rows = rows.filter(**{name: value})
    return rows.select_related("project", "project__department", "api_key")


@dataclass
class EventsPage:
    """One page of events, newest first, and the positions its neighbours start from ("" at either end)."""

    object_list: list[UsageEvent]
    newer: str = ""
    older: str = ""


def _position(event: UsageEvent) -> str:
    return f"{event.occurred_at.isoformat()}_{event.pk}"


def _parse_position(value: str | None) -> tuple[dt.datetime, int] | None:
    moment, _, pk = (value or "").rpartition("_")
    try:
        when = dt.datetime.fromisoformat(moment)
    except ValueError:
        return None
    if when.tzinfo is None or not pk.isdigit():
        return None
    return when, int(pk)


Span = tuple[dt.datetime, dt.datetime]


def matching_spans(query: UsageQuery, *, rating_status: str | None = None) -> list[Span] | None:
    """The stretches of time (UTC, half-open, oldest first) that hold every event the query's filters (and rating
    status) match, from the rollups: the hours of the hourly rollups that match, and for an end user the local days
    of theirs. None without filters (every stretch would do). A filter that matches rarely then reads the events of a
    few hours, not every event of the period."""
    from metering.services import rollups_flush

    if not query.filters and rating_status is None:
        return None
    rollups_flush()
    # An hour's rollup carries the local date it starts on; in a zone half an hour off UTC the last one of a day also
    # holds the first half hour of the next — so the hours of the day before the first day asked for are read too,
    # and for an end user's days, the hour that straddles each one's local midnight.
    day = dt.timedelta(days=1)
    others = replace(
        query, start=query.start - day, filters={k: v for k, v in query.filters.items() if k != "end_user"}
    )
    hours = _base(others, "usage", UsageRollup.Grain.HOUR).filter(requests__gt=0)
    if rating_status is not None:
        hours = hours.filter(rating_status=rating_status)
    if "end_user" in query.filters:
        days = _end_user_active_days(query)
        zone = zoneinfo.ZoneInfo(query.tenant.timezone)
        straddling = Q(day__in=days)
        for local in days:
            midnight = dt.datetime.combine(local, dt.time(), tzinfo=zone)
            straddling |= Q(day=local - day, bucket__gt=midnight - dt.timedelta(hours=1), bucket__lt=midnight)
        hours = hours.filter(straddling)
    spans: list[Span] = []
    for start in hours.order_by("bucket").values_list("bucket", flat=True).distinct():
        stop = start + dt.timedelta(hours=1)
        if spans and spans[-1][1] >= start:
            spans[-1] = (spans[-1][0], stop)
        else:
            spans.append((start, stop))
    return spans


def _ordered(
    events: QuerySet[UsageEvent],
    spans: list[Span] | None,
    *,
    newest_first: bool,
    position: tuple[dt.datetime, int] | None,
) -> Iterator[QuerySet[UsageEvent]]:
    """The events past `position` in the page's order: one query, or one per span in turn (each reads its stretch
    of the tenant's time index)."""
    if position is not None:
        when, pk = position
        if newest_first:
            events = events.filter(occurred_at__lte=when).exclude(occurred_at=when, pk__gte=pk)
        else:
            events = events.filter(occurred_at__gte=when).exclude(occurred_at=when, pk__lte=pk)
    order = ("-occurred_at", "-id") if newest_first else ("occurred_at", "id")
    if spans is None:
        yield events.order_by(*order)
        return
    for start, stop in reversed(spans) if newest_first else spans:
        if position is not None and (stop <= position[0] if not newest_first else start > position[0]):
            continue  # wholly on the side of the position already shown
        yield events.filter(occurred_at__gte=start, occurred_at__lt=stop).order_by(*order)


def events_oldest_first(query: UsageQuery) -> Iterator[QuerySet[UsageEvent]]:
    """The query's events, oldest first, as querysets to read in turn: with filters, one per stretch of time the
    rollups say holds a match (matching_spans) — an export of a rare end user reads a few hours, not every event of
    the period — and none when nothing matches."""
    return _ordered(events_for(query), matching_spans(query), newest_first=False, position=None)


def _take(queries: Iterator[QuerySet[UsageEvent]], count: int) -> list[UsageEvent]:
    rows: list[UsageEvent] = []
    for query in queries:
        rows += list(query[: count - len(rows)])
        if len(rows) >= count:
            break
    return rows


def events_slice(
    events: QuerySet[UsageEvent],
    *,
    older: str | None = None,
    newer: str | None = None,
    size: int,
    spans: list[Span] | None = None,
) -> EventsPage:
    """The `size` events just older than the position `older` (or just newer than `newer`; with neither, the
    newest), newest first, and the positions of the pages beside it — by position (keyset), not by number: it reads
    one page's rows along the (tenant, time) index however deep the page is (no count and no offset, which over a
    tenant's millions of events cost seconds) and, given the `spans` that hold every match (matching_spans), only
    those stretches of it. Past the last match the page is empty; a position this module did not give is a
    ValueError."""
    if newer is not None:
        rows = _take(_ordered(events, spans, newest_first=False, position=_position_of(newer)), size + 1)
        more = len(rows) > size
        rows = rows[:size][::-1]
        return EventsPage(rows, newer=_position(rows[0]) if more else "", older=_position(rows[-1]) if rows else "")
    before = None if older is None else _position_of(older)
    rows = _take(_ordered(events, spans, newest_first=True, position=before), size + 1)
    more = len(rows) > size
    rows = rows[:size]
    return EventsPage(
        rows,
        newer=_position(rows[0]) if before is not None and rows else "",
        older=_position(rows[-1]) if more else "",
    )


def _position_of(value: str) -> tuple[dt.datetime, int]:
    if (position := _parse_position(value)) is None:
        raise ValueError(f"not a position: {value!r}")
    return position


def events_page(
    events: QuerySet[UsageEvent], *, older: str | None, newer: str | None, size: int, spans: list[Span] | None = None
) -> EventsPage:
    """The portal's page of events (events_slice) from the positions its Older and Newer links carry. A position
    that does not parse, or past which nothing is left (a link kept from before), gives the newest page."""
    try:
        if newer and _parse_position(newer) is not None:
            page = events_slice(events, newer=newer, size=size, spans=spans)
        else:
            page = events_slice(events, older=older or None, size=size, spans=spans)
    except ValueError:
        page = EventsPage([])
    if not page.object_list and (older or newer):
        return events_slice(events, size=size, spans=spans)
    return page


def project_summary(query: UsageQuery) -> list[dict[str, Any]]:
    """Chargeback summary by department and project, from the daily rollups."""
    scoped = UsageQuery(
        tenant=query.tenant,
        start=query.start,
        end=query.end,
        group_by=["department", "project"],
        filters={k: v for k, v in query.filters.items() if k != "end_user"},
        project_ids=query.project_ids,
    )
    return usage_aggregate(scoped)["rows"]


def unpriced_groups() -> QuerySet[Any]:
    """The platform admin's queue: models seen in events with no price, with counts, most events first (a query:
    clients name models freely, so the queue can be long — pages take it a slice at a time)."""
    return (
        UsageEvent.objects.filter(rating_status=UsageEvent.RatingStatus.UNPRICED)
        .values("model", "provider")
        .annotate(
            events=Count("id"),
            tenants=Count("tenant", distinct=True),
            first_seen=Min("occurred_at"),
            last_seen=Max("occurred_at"),
        )
        .order_by("-events", "model")
    )


def unpriced_count() -> int:
    """How many (model, provider) pairs wait for a price."""
    return (
        UsageEvent.objects.filter(rating_status=UsageEvent.RatingStatus.UNPRICED)
        .values("model", "provider")
        .distinct()
        .count()
    )


def project_names(tenant: Tenant) -> dict[str, str]:
    return dict(Project.objects.filter(tenant=tenant).values_list("slug", "name"))


def prices_for_model(prices: QuerySet[Any], model: str) -> QuerySet[Any]:
    """The price-book rows that can price `model`, found as rating finds them (metering.pricebook): the model's own
    name or an exact alias, case-insensitively; failing those, the rows with a glob alias that matches it. The same
    on every database (aliases are matched by the price book, not in SQL)."""
    from metering.pricebook import price_book

    return prices.filter(pk__in=price_book.candidate_ids(model))
