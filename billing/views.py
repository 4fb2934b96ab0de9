"""Portal pages: a tenant's bills (open month and closed months), contracts (account managers), the finance
overview of bills and closing, and FX rates."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.bills import BillBlocked, bill_preview, month_close, months_close, period_parse
from billing.contracts import ContractRuleViolation, contract_activate, contract_create, contract_update
from billing.forms import CloseMonthForm, ContractForm, FxRateForm
from billing.fx import PRICE_CURRENCY, fx_rate_add
from billing.models import Bill, BillLine, CloseBlock, Contract, FxRate
from billing.portal import billing_tenant, line_groups, require_staff
from billing.selectors import bills_for_user
from billing.serializers import ContractSerializer
from tenants.roles import FINANCE, PLATFORM_ADMINS
from tenants.selectors import (
    has_staff_role,
    manages_as_staff,
    tenant_get_for_user,
    tenants_for_user,
)


@login_required
def bills(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    preview, preview_error = None, None
    try:
        preview = bill_preview(tenant_obj)
    except BillBlocked as blocked:
        preview_error = blocked.message
    closed = Bill.objects.filter(tenant=tenant_obj).order_by("-period", "group_key")
    page = Paginator(closed, 24).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/bills.html",
        {
            "tenant": tenant_obj,
            "preview": preview,
            "draft": preview.bills[0] if preview else None,
            "preview_error": preview_error,
            "page": page,
            "blocks": CloseBlock.objects.filter(tenant=tenant_obj),
            "bucket_labels": dict(BillLine.Bucket.choices),
            "kind_labels": dict(BillLine.Kind.choices),
        },
    )


@login_required
def bill_detail(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    bill = get_object_or_404(bills_for_user(request.user).filter(tenant=tenant_obj), pk=pk)
    lines = list(bill.lines.all())
    usage_by_model, other_lines = line_groups(lines)
    estimated_share = (bill.estimated_amount / bill.usage_subtotal * 100) if bill.usage_subtotal else 0
    return render(
        request,
        "billing/bill_detail.html",
        {
            "tenant": tenant_obj,
            "bill": bill,
            "usage_by_model": usage_by_model,
            "other_lines": other_lines,
            "estimated_share": estimated_share,
            "fx_is_identity": bill.currency == PRICE_CURRENCY,
        },
    )


# --- contracts (account managers write; owners, admins, members and staff read) -------------------------


def _contract_errors(form: ContractForm, errors: dict[str, Any]) -> None:
    for name, problems in errors.items():
        text = "; ".join(str(p) if not isinstance(p, dict) else "; ".join(map(str, p.values())) for p in problems)
        form.add_error(name if name in form.fields else None, text)


def _contract_data(form: ContractForm, partial: bool = False, contract: Contract | None = None) -> dict | None:
    body = ContractSerializer(contract, data=form.api_data(), partial=partial)
    if not body.is_valid():
        _contract_errors(form, body.errors)
        return None
    return dict(body.validated_data)


@login_required
def contracts(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    can_edit = manages_as_staff(request.user, tenant_obj)
    # A new contract usually changes a few terms of the one in force: it starts from them (all but the start date).
    current = Contract.objects.filter(tenant=tenant_obj, status=Contract.Status.ACTIVE).order_by("-starts_on").first()
    initial = ContractForm.initial_from(current) if current else {"billing_currency": tenant_obj.billing_currency}
    initial.pop("starts_on", None)
    form = ContractForm(initial=initial)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(_("Only the tenant's account manager edits its contracts."))
        form = ContractForm(request.POST)
        if form.is_valid() and (data := _contract_data(form)) is not None:
            contract = contract_create(actor=request.user, tenant=tenant_obj, **data)
            messages.success(request, _("Draft contract %(number)s created.") % {"number": contract.number})
            return redirect("portal:contract", tenant=tenant_obj.slug, pk=contract.pk)
    history = Contract.objects.filter(tenant=tenant_obj).order_by("-starts_on", "-id")
    return render(
        request,
        "billing/contracts.html",
        {"tenant": tenant_obj, "contracts": history, "form": form, "can_edit": can_edit, "current": current},
    )


@login_required
def contract_detail(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    contract = get_object_or_404(Contract, tenant=tenant_obj, pk=pk)
    can_edit = manages_as_staff(request.user, tenant_obj) and contract.status == Contract.Status.DRAFT
    form = ContractForm(initial=ContractForm.initial_from(contract))
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(_("Only a draft contract can be changed, by the tenant's account manager."))
        try:
            if request.POST.get("action") == "activate":
                contract_activate(actor=request.user, contract=contract)
                messages.success(request, _("Contract %(number)s is active.") % {"number": contract.number})
                return redirect("portal:contract", tenant=tenant_obj.slug, pk=contract.pk)
            form = ContractForm(request.POST)
            if form.is_valid() and (data := _contract_data(form, partial=True, contract=contract)) is not None:
                contract_update(actor=request.user, contract=contract, **data)
                messages.success(request, _("Draft saved."))
                return redirect("portal:contract", tenant=tenant_obj.slug, pk=contract.pk)
        except ContractRuleViolation as refused:
            messages.error(request, str(refused))
            return redirect("portal:contract", tenant=tenant_obj.slug, pk=contract.pk)
    return render(
        request,
        "billing/contract_detail.html",
        {"tenant": tenant_obj, "contract": contract, "form": form, "can_edit": can_edit},
    )


# --- finance ------------------------------------------------------------------------------------------


def _can_close(user: Any) -> bool:
    return has_staff_role(user, FINANCE, PLATFORM_ADMINS)


@login_required
def finance_bills(request: HttpRequest) -> HttpResponse:
    """Every bill the staff member sees, by period and status, the months that cannot close and why."""
    require_staff(request)
    visible = tenants_for_user(request.user).values("pk")
    all_bills = Bill.objects.filter(tenant__in=visible).select_related("tenant")
    periods = sorted({f"{p:%Y-%m}" for p in all_bills.values_list("period", flat=True).distinct()}, reverse=True)
    period = request.GET.get("period") or (periods[0] if periods else "")
    status = request.GET.get("status", "")
    shown = all_bills
    if period:
        try:
            shown = shown.filter(period=period_parse(period))
        except ValueError:
            period = ""
    if status in Bill.Status.values:
        shown = shown.filter(status=status)
    totals = shown.values("currency").annotate(count=Count("id"), net=Sum("net"), tax=Sum("tax"), total=Sum("total"))
    page = Paginator(shown.order_by("tenant__slug", "group_key"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/finance_bills.html",
        {
            "page": page,
            "periods": periods,
            "period": period,
            "status": status,
            "statuses": Bill.Status.choices,
            "totals": totals.order_by("currency"),
            "blocks": CloseBlock.objects.filter(tenant__in=visible).select_related("tenant"),
            "can_close": _can_close(request.user),
            "close_form": CloseMonthForm(initial={"period": period}),
        },
    )


@login_required
@require_POST
def finance_bills_close(request: HttpRequest) -> HttpResponse:
    if not _can_close(request.user):
        raise PermissionDenied(_("Finance and platform admins close months."))
    form = CloseMonthForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Name the month as YYYY-MM."))
        return redirect("portal:finance-bills")
    period = period_parse(form.cleaned_data["period"])
    if form.cleaned_data["tenant"]:
        tenant = tenant_get_for_user(user=request.user, slug=form.cleaned_data["tenant"])
        results = [month_close(tenant=tenant, period=period, actor=request.user)]
    else:
        results = months_close(period=period, actor=request.user)
    closed = [r for r in results if r.status == "closed"]
    for result in results:
        if result.error is not None:
            messages.error(request, f"{result.tenant.slug}: {result.error.message}")
    messages.success(
        request,
        _("%(period)s: %(closed)s closed, %(already)s already closed.")
        % {
            "period": form.cleaned_data["period"],
            "closed": len(closed),
            "already": sum(r.status == "already_closed" for r in results),
        },
    )
    return redirect(f"{_url('portal:finance-bills')}?period={form.cleaned_data['period']}")


def _url(name: str) -> str:
    from django.urls import reverse

    return reverse(name)


@login_required
def fx_rates(request: HttpRequest) -> HttpResponse:
    """USD rates by currency (staff read; finance adds rates)."""
    require_staff(request)
    can_add = has_staff_role(request.user, FINANCE)
    form = FxRateForm()
    if request.method == "POST":
        if not can_add:
            raise PermissionDenied(_("Finance adds FX rates."))
        form = FxRateForm(request.POST)
        if form.is_valid():
            quote = form.cleaned_data["quote"].upper()
            try:
                fx_rate_add(
                    actor=request.user,
                    base=PRICE_CURRENCY,
                    quote=quote,
                    date=form.cleaned_data["date"],
                    rate=form.cleaned_data["rate"],
                )
            except IntegrityError:
                form.add_error("date", _("A rate for this currency and day exists already."))
            else:
                messages.success(request, _("Rate added."))
                return redirect(f"{_url('portal:fx-rates')}?quote={quote}")
    quotes = list(
        FxRate.objects.filter(base=PRICE_CURRENCY).values_list("quote", flat=True).distinct().order_by("quote")
    )
    in_use = sorted(
        set(Contract.objects.exclude(status=Contract.Status.DRAFT).values_list("billing_currency", flat=True))
    )
    quote = (request.GET.get("quote") or (in_use[0] if in_use else "EUR")).upper()[:3]
    rates = FxRate.objects.filter(base=PRICE_CURRENCY, quote=quote).order_by("-date")
    page = Paginator(rates, 31).get_page(request.GET.get("page"))
    from django.utils import timezone

    from billing.bills import FX_MAX_AGE_DAYS
    from billing.fx import fx_closing_needs

    needs = fx_closing_needs(quotes=in_use, today=timezone.localdate(), max_age_days=FX_MAX_AGE_DAYS)
    return render(
        request,
        "billing/fx_rates.html",
        {
            "page": page,
            "quote": quote,
            "quotes": quotes,
            "in_use": in_use,
            "form": form,
            "can_add": can_add,
            "closing_needs": needs,
        },
    )


MIX_ROWS = 5


@login_required
def estimate_page(request: HttpRequest, tenant: str) -> HttpResponse:
    """The cost estimator: a GET form (shareable, no side effects) and the month it would make."""
    from django.db.models import Q
    from django.utils import timezone

    from billing.estimator import EstimateInvalid, estimate, traffic_parse
    from metering.models import ModelPrice

    tenant_obj = billing_tenant(request, tenant)
    params = request.GET
    today = timezone.now()
    models = sorted(
        set(
            ModelPrice.objects.filter(effective_from__lte=today)
            .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=today))
            .values_list("model", flat=True)
        )
    )
    rows = [{"model": params.get(f"model_{i}", ""), "share": params.get(f"share_{i}", "")} for i in range(MIX_ROWS)]
    prefilled = None
    result = None
    errors: dict[str, list[str]] = {}
    error_message = ""
    if params.get("input_tokens") is not None:
        unit = params.get("unit", "day")
        data: dict[str, Any] = {
            "requests_per_second" if unit == "second" else "requests_per_day": params.get("requests", ""),
            "days": params.get("days", "30"),
            "mix": [{"model": r["model"], "share": r["share"]} for r in rows if r["model"] or r["share"]],
        }
        for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
            data[name] = params.get(name, "")
        try:
            result = estimate(tenant_obj, traffic_parse(data))
        except EstimateInvalid as exc:
            errors, error_message = exc.fields, exc.message
    elif not any(r["model"] for r in rows):
        from billing.estimator import traffic_from_usage

        # A first visit starts from the tenant's own traffic of the last 30 days, when it has some.
        prefilled = traffic_from_usage(tenant_obj, models, rows=MIX_ROWS)
        if prefilled is not None:
            params = prefilled  # type: ignore[assignment]
            for i, item in enumerate(prefilled["mix"]):
                rows[i] = item
        else:
            rows[0] = {"model": models[0] if models else "", "share": "100"}
    groups, others = line_groups(result.totals.lines) if result else ([], [])
    return render(
        request,
        "billing/estimate.html",
        {
            "tenant": tenant_obj,
            "params": params,
            "prefilled": prefilled,
            "rows": rows,
            "models": models,
            "result": result,
            "groups": groups,
            "others": others,
            "errors": errors,
            "error_message": error_message,
            "bucket_labels": dict(BillLine.Bucket.choices),
        },
    )
