"""Portal pages: the usage explorer and events (tenants), the price book and unpriced queue (platform)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from metering.charts import SERIES_LIMIT, bar_chart, stacked_chart
from metering.events import parse_day
from metering.models import ModelPrice
from metering.selectors import (
    FILTERS,
    GROUP_BY,
    TOKEN_SUMS,
    EventsPage,
    UsageQuery,
    daily_cost_of,
    events_for,
    events_page,
    matching_spans,
    unpriced_count,
    unpriced_groups,
    usage_aggregate,
    usage_counts,
    usage_scope_projects,
)
from tenants.roles import PLATFORM_ADMINS
from tenants.selectors import has_staff_role, projects_for_user, tenant_get_for_user

PRESETS = {"7d": 7, "30d": 30, "90d": 90}
EVENTS_PER_PAGE = 50
TABLE_ROWS = 100  # the explorer's table: the largest groups; the rest in one line (the exports hold every event)


def _group_labels() -> dict[str, str]:
    return {
        "day": _("Day"),
        "model": _("Model"),
        "project": _("Project"),
        "feature": _("Feature"),
        "end_user": _("End user"),
        "api_key": _("API key"),
        "department": _("Department"),
        "environment": _("Environment"),
    }


def _asked_dates(params: Any, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """(start, end) as the query gives them (end: today when left out), or None unless both are dates YYYY-MM-DD
    between the years 2000 and 2100."""
    start, end = parse_day(params.get("start")), parse_day(params["end"]) if params.get("end") else today
    if start is None or end is None or not (2000 <= start.year <= 2100 and 2000 <= end.year <= 2100):
        return None
    return start, end


def _explorer_query(request: HttpRequest, tenant: Any, params: Any = None) -> tuple[UsageQuery, dict[str, Any]]:
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    today = timezone.now().astimezone(zone).date()
    params = request.GET if params is None else params
    preset = params.get("preset", "" if params.get("start") else "30d")
    if preset == "mtd":
        start, end = today.replace(day=1), today
    elif preset in PRESETS:
        start, end = today - dt.timedelta(days=PRESETS[preset] - 1), today
    else:
        asked = _asked_dates(params, today)
        if asked is None:
            if request.method == "GET" and params.get("start"):
                messages.warning(request, _("Dates are YYYY-MM-DD between 2000 and 2100; showing the last 30 days."))
            asked, preset = (today - dt.timedelta(days=29), today), "30d"
        start, end = asked
    if end < start:
        start, end = end, start
    start = max(start, end - dt.timedelta(days=365))
    group = params.get("group_by", "model")
    if group not in GROUP_BY:
        group = "model"
    filters: dict[str, Any] = {}
    for name in FILTERS:
        value = params.get(name, "").strip()
        if value:
            filters[name] = (value == "true") if name == "estimated" else value[:200]
    query = UsageQuery(
        tenant=tenant,
        start=start,
        end=end,
        group_by=[group],
        filters=filters,
        project_ids=usage_scope_projects(tenant=tenant, user=request.user),
    )
    state = {"preset": preset, "start": start, "end": end, "group_by": group, "filters": filters}
    return query, state


def _export_context(tenant: Any, query: UsageQuery, events: int) -> dict[str, Any]:
    """Export links for what is on screen: straight from the usage export API when small, otherwise a
    form that starts a background export."""
    filters = {k: ("true" if v is True else "false" if v is False else v) for k, v in query.filters.items()}
    dates = {"start": query.start.isoformat(), "end": query.end.isoformat()}
    return {
        "export_query": urlencode(dict(filters, tenant=tenant.slug, **dates)),
        "export_fields": sorted(dict(filters, preset="", **dates).items()),
        "export_events": events,
        "export_background": events > settings.METERLINE_EXPORT_SYNC_ROWS,
    }


@login_required
def usage_explorer(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    query, state = _explorer_query(request, tenant_obj)
    grouped = usage_aggregate(query)
    if state["group_by"] == "day":  # a calendar reads by date, the latest first
        rows = sorted(grouped["rows"], key=lambda r: r["day"], reverse=True)
        daily = grouped
    else:  # the largest spend first
        rows = sorted(grouped["rows"], key=lambda r: r["cost"], reverse=True)
        daily = usage_aggregate(
            UsageQuery(
                tenant=tenant_obj,
                start=query.start,
                end=query.end,
                group_by=["day"],
                filters=query.filters,
                project_ids=query.project_ids,
            )
        )
    by_day = {row["day"]: row["cost"] for row in daily["rows"]}
    points = []
    day = query.start
    while day <= query.end:
        points.append((day.isoformat(), by_day.get(day.isoformat(), Decimal(0))))
        day += dt.timedelta(days=1)
    peak = max(points, key=lambda p: p[1]) if points else None
    if peak is not None and not peak[1]:
        peak = None  # no cost in the range: no highest day to name
    stacked = None
    if state["group_by"] != "day" and rows:
        # Only the largest groups are summed by day (as the chart names them); the rest is the day's total less them.
        def label(row: dict[str, Any]) -> str:
            return str(row.get(state["group_by"]) or "—")

        largest = sorted(rows, key=lambda r: (r["cost"], label(r)), reverse=True)[:SERIES_LIMIT]
        by_group = daily_cost_of(query, state["group_by"], [row.get(state["group_by"]) for row in largest])
        values = {label(row): by_group.get(row.get(state["group_by"]), {}) for row in largest}
        others = {
            day: max(Decimal(0), cost - sum((v.get(day, Decimal(0)) for v in values.values()), Decimal(0)))
            for day, cost in points
        }
        stacked = stacked_chart([day for day, _cost in points], values, others_label=_("Others"), others=others)
    more = None
    if state["group_by"] != "day" and len(rows) > TABLE_ROWS:  # days are at most a year's; groups may be thousands
        rest = rows[TABLE_ROWS:]
        more = {name: sum(row[name] for row in rest) for name in (*TOKEN_SUMS, "requests", "cost")}
        more["count"] = len(rest)
        rows = rows[:TABLE_ROWS]
    base_filters = {k: ("true" if v is True else "false" if v is False else v) for k, v in query.filters.items()}
    dates = {"start": query.start.isoformat(), "end": query.end.isoformat()}
    for row in rows:
        value = row.get(state["group_by"])
        drill = dict(base_filters, **dates)
        if value is not None and state["group_by"] != "day":
            drill[state["group_by"]] = value
        elif state["group_by"] == "day" and value:
            drill.update(start=value, end=value)
        row["events_url"] = "?" + urlencode(drill)
    projects = projects_for_user(request.user, tenant_obj).order_by("name")
    from tenants.models import Department, Environment

    departments = Department.objects.filter(tenant=tenant_obj, projects__in=projects).distinct().order_by("name")
    return render(
        request,
        "metering/usage_explorer.html",
        {
            "tenant": tenant_obj,
            "rows": rows,
            "more": more,
            "totals": grouped["totals"],
            "state": state,
            "chart": bar_chart(points),
            "stacked": stacked,
            "peak": peak,
            "presets": ["7d", "30d", "90d", "mtd"],
            "group_choices": GROUP_BY,
            "projects": projects,
            "departments": departments,
            "environments": Environment.choices,
            "group_label": _group_labels()[state["group_by"]],
            **_export_context(tenant_obj, query, grouped["totals"]["requests"]),
        },
    )


@login_required
def usage_events(request: HttpRequest, tenant: str) -> HttpResponse:
    """The events of the explorer's period and filters, newest first; or, given `event_id`, that event whenever it
    happened ("did event X arrive, and how was it priced?") — among the projects the person sees."""
    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    query, state = _explorer_query(request, tenant_obj)
    event_id = request.GET.get("event_id", "").strip()[:128].replace("\x00", "")
    if event_id:
        since_ever = UsageQuery(
            tenant=tenant_obj,
            start=dt.date(2000, 1, 1),
            end=dt.date(2100, 12, 31),
            group_by=[],
            project_ids=query.project_ids,
        )
        events = events_for(since_ever, event_id=event_id).order_by("-occurred_at", "-id")
    else:
        events = events_for(query).order_by("-occurred_at", "-id")
    # How many match, from the rollups (a count of the events themselves reads every one of them); when none do,
    # the events are not searched (a filter that matches nothing would walk every event of the period).
    matching = None if event_id else usage_counts(query)[0]
    if matching == 0:
        page = EventsPage([])
    else:
        # With filters, only the hours the rollups say hold a match are read (a rare end user or feature would
        # otherwise walk every event of the period).
        page = events_page(
            events,
            older=request.GET.get("older"),
            newer=request.GET.get("newer"),
            size=EVENTS_PER_PAGE,
            spans=None if event_id else matching_spans(query),
        )
    if matching is None:
        matching = len(page.object_list)
    params = request.GET.copy()
    for name in ("older", "newer", "page"):
        params.pop(name, None)
    return render(
        request,
        "metering/usage_events.html",
        {
            "tenant": tenant_obj,
            "page": page,
            "matching": matching,
            "state": state,
            "event_id": event_id,
            "query_string": params.urlencode(),
            **_export_context(tenant_obj, query, matching),
        },
    )


@login_required
def usage_exports(request: HttpRequest, tenant: str) -> HttpResponse:
    """The person's background exports of this tenant; POST starts one for what was on screen."""
    from metering.exports import ExportTooLarge, export_request, exports_for_user

    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    if request.method == "POST":
        query, _state = _explorer_query(request, tenant_obj, params=request.POST)
        kind = "csv" if request.POST.get("format") == "csv" else "xlsx"
        try:
            export = export_request(query=query, kind=kind, user=request.user)
        except ExportTooLarge as exc:
            messages.error(
                request, _("More than %(limit)s events: narrow the period or the filters.") % {"limit": exc.limit}
            )
            return redirect("portal:usage-exports", tenant=tenant_obj.slug)
        return redirect("portal:usage-export", tenant=tenant_obj.slug, pk=export.pk)
    page = Paginator(exports_for_user(tenant=tenant_obj, user=request.user), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "metering/usage_exports.html",
        {"tenant": tenant_obj, "page": page, "refresh": any(e.pending for e in page.object_list)},
    )


def _own_export(request: HttpRequest, tenant: str, pk: int) -> Any:
    from django.http import Http404

    from metering.exports import exports_for_user

    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    export = exports_for_user(tenant=tenant_obj, user=request.user).filter(pk=pk).first()
    if export is None:
        raise Http404
    return export


@login_required
def usage_export(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    export = _own_export(request, tenant, pk)
    return render(
        request,
        "metering/usage_export.html",
        {"tenant": export.tenant, "export": export, "refresh": export.pending},
    )


@login_required
def usage_export_download(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    from metering.exports import CONTENT_TYPES
    from metering.models import UsageExport

    export = _own_export(request, tenant, pk)
    if export.status != UsageExport.Status.READY:
        return redirect("portal:usage-export", tenant=tenant, pk=pk)
    content = UsageExport.objects.values_list("content", flat=True).get(pk=export.pk) or b""
    response = HttpResponse(bytes(content), content_type=CONTENT_TYPES[export.format])
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


def _require_platform_admin(request: HttpRequest) -> None:
    if not has_staff_role(request.user, PLATFORM_ADMINS):
        raise PermissionDenied


@login_required
def price_book(request: HttpRequest) -> HttpResponse:
    _require_platform_admin(request)
    search = request.GET.get("q", "").strip()
    current = request.GET.get("current", "1") == "1"
    prices = ModelPrice.objects.order_by("provider", "model", "-effective_from")
    if search:
        prices = prices.filter(Q(model__icontains=search) | Q(provider__icontains=search))
    if current:
        now = timezone.now()
        prices = prices.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=now), effective_from__lte=now)
    page = Paginator(prices, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "metering/price_book.html",
        {
            "page": page,
            "search": search,
            "current": current,
            "unpriced_count": unpriced_count(),
        },
    )


@login_required
def price_new(request: HttpRequest) -> HttpResponse:
    """Add a price: a new effective-dated row (history is never edited); unpriced events of the model are
    re-rated once it is stored."""
    _require_platform_admin(request)
    from metering.forms import PriceForm
    from metering.prices import PriceRuleViolation, price_add

    if request.method == "POST":
        form = PriceForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    price = price_add(
                        actor=request.user,
                        provider=data["provider"],
                        model=data["model"],
                        prices=form.prices,
                        effective_from=data["effective_from"],
                        aliases=data["aliases"],
                    )
            except PriceRuleViolation as exc:
                form.add_error("effective_from", str(exc))
            else:
                messages.success(
                    request,
                    _("Price of %(model)s added, in force from %(start)s; its events from then on are being re-rated.")
                    % {
                        "model": f"{price.provider}/{price.model}",
                        "start": date_format(timezone.localtime(price.effective_from), "SHORT_DATETIME_FORMAT"),
                    },
                )
                return redirect(f"{reverse('portal:price-book')}?{urlencode({'q': price.model, 'current': '0'})}")
    else:
        form = PriceForm(initial=PriceForm.initial_from(request.GET))
    return render(request, "metering/price_new.html", {"form": form})


@login_required
@require_POST
def price_aliases(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the other names a price row answers to; events those names now price are re-rated."""
    _require_platform_admin(request)
    from metering.forms import AliasesForm
    from metering.prices import price_update_aliases

    price = get_object_or_404(ModelPrice, pk=pk)
    form = AliasesForm(request.POST)
    if form.is_valid():
        price_update_aliases(actor=request.user, price=price, aliases=form.cleaned_data["aliases"])
        messages.success(
            request,
            _("Aliases of %(model)s saved; unpriced events they name are being re-rated.")
            % {"model": f"{price.provider}/{price.model}"},
        )
    else:
        messages.error(request, "; ".join(str(problem) for problem in form.errors["aliases"]))
    return redirect(f"{reverse('portal:price-book')}?{urlencode({'q': price.model, 'current': '0'})}")


@login_required
@require_POST
def price_book_import(request: HttpRequest) -> HttpResponse:
    _require_platform_admin(request)
    from metering.prices import genai_prices_rows, prices_import

    result = prices_import(
        actor=request.user, rows=genai_prices_rows(), source=ModelPrice.Source.GENAI_PRICES, now=timezone.now()
    )
    messages.success(
        request,
        _("%(created)s price rows added, %(unchanged)s unchanged.")
        % {"created": result.created, "unchanged": result.unchanged},
    )
    return redirect("portal:price-book")


@login_required
def unpriced_queue(request: HttpRequest) -> HttpResponse:
    _require_platform_admin(request)
    page = Paginator(unpriced_groups(), 50).get_page(request.GET.get("page"))
    return render(request, "metering/unpriced.html", {"models": page.object_list, "page": page})


@login_required
@require_POST
def unpriced_rerate(request: HttpRequest) -> HttpResponse:
    _require_platform_admin(request)
    from metering.prices import events_rerate

    result = events_rerate(only_unpriced=True)
    messages.success(
        request,
        _("%(changed)s events priced; %(left)s still without a price.")
        % {"changed": result.changed, "left": result.still_unpriced},
    )
    return redirect("portal:unpriced")


@login_required
def insights(request: HttpRequest, tenant: str) -> HttpResponse:
    """Cost optimisation suggestions for a month (default: the last full month)."""
    from metering.insights import last_month, month_bounds, suggestions

    tenant_obj = tenant_get_for_user(user=request.user, slug=tenant)
    latest = last_month(tenant_obj, timezone.now())
    months = [latest]
    for _step in range(11):
        months.append((months[-1] - dt.timedelta(days=1)).replace(day=1))
    try:
        period = dt.date.fromisoformat(request.GET.get("period", "") + "-01")
    except ValueError:
        period = latest
    if period > latest or period.year < 2000:
        period = latest
    if period not in months:
        months.append(period)
    found = suggestions(tenant_obj, period, project_ids=usage_scope_projects(tenant=tenant_obj, user=request.user))
    return render(
        request,
        "metering/insights.html",
        {
            "tenant": tenant_obj,
            "period": period,
            "months": months,
            "period_end": month_bounds(period)[1],
            "suggestions": found,
            "total_saving": sum((s.saving for s in found), Decimal(0)),
        },
    )


def _require_finance(request: HttpRequest) -> None:
    from tenants.roles import FINANCE

    if not has_staff_role(request.user, FINANCE, PLATFORM_ADMINS):
        raise PermissionDenied


@login_required
def reconciliation(request: HttpRequest) -> HttpResponse:
    """Finance: provider statements imported so far, and the import form."""
    from metering.models import ProviderStatement
    from metering.reconciliation import StatementInvalid, statement_import
    from tenants.models import Tenant

    _require_finance(request)
    if request.method == "POST":
        upload = request.FILES.get("file")
        tenant = Tenant.objects.filter(slug=request.POST.get("tenant", "")).first()
        try:
            tolerance = Decimal(request.POST.get("tolerance_percent") or "1")
            if upload is None:
                raise StatementInvalid(_("Choose the provider's export file."))
            statement = statement_import(
                actor=request.user,
                content=upload.read(),
                filename=upload.name or "",
                fmt=request.POST.get("format", ""),
                provider=request.POST.get("provider", ""),
                tenant=tenant,
                tolerance_percent=tolerance,
            )
        except StatementInvalid as exc:
            messages.error(request, exc.message)
        except ArithmeticError:
            messages.error(request, _("The tolerance is a number of percent, such as 1 or 0.5."))
        else:
            return redirect("portal:reconciliation-report", pk=statement.pk)
    page = Paginator(ProviderStatement.objects.select_related("tenant"), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "metering/reconciliation.html",
        {
            "page": page,
            "formats": ProviderStatement.Format.choices,
            "tenants": Tenant.objects.order_by("name").values_list("slug", "name"),
        },
    )


@login_required
def reconciliation_report(request: HttpRequest, pk: int) -> HttpResponse:
    from django.shortcuts import get_object_or_404

    from metering.models import ProviderStatement
    from metering.reconciliation import reconcile

    _require_finance(request)
    statement = get_object_or_404(ProviderStatement.objects.select_related("tenant"), pk=pk)
    report = reconcile(statement)
    only_flagged = request.GET.get("flagged") == "1"
    rows = report.flagged if only_flagged else report.rows
    page = Paginator(rows, 100).get_page(request.GET.get("page"))
    provider_total, metered_total = report.total("provider"), report.total("metered")
    return render(
        request,
        "metering/reconciliation_report.html",
        {
            "statement": statement,
            "report": report,
            "page": page,
            "only_flagged": only_flagged,
            "provider_total": provider_total,
            "metered_total": metered_total,
            "token_diff": metered_total.total_tokens - provider_total.total_tokens,
            "cost_diff": metered_total.cost - provider_total.cost,
        },
    )
