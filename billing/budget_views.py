"""Portal pages: a tenant's budgets with gauges, alerts and anomalies; notification channels with a test send,
turned off and on, removed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.budgets import BudgetInvalid, budget_create, budget_states, budget_update
from billing.forms import BudgetEditForm, BudgetForm, ChannelForm
from billing.models import Budget, BudgetAlert, BudgetRaiseRequest, NotificationChannel
from billing.serializers import BudgetSerializer, ChannelSerializer
from core.audit import audit_record, audit_snapshot, audited_update
from tenants.selectors import can_manage_tenant, full_access_tenant_ids, manages_as_staff, tenant_get_for_user


def _tenant(request: HttpRequest, slug: str) -> Any:
    tenant = tenant_get_for_user(user=request.user, slug=slug)
    if not full_access_tenant_ids(request.user).filter(pk=tenant.pk).exists():
        raise PermissionDenied(_("Budgets are for the tenant's owners, admins and members."))
    return tenant


@login_required
def budgets(request: HttpRequest, tenant: str) -> HttpResponse:
    from metering.models import Anomaly

    tenant_obj = _tenant(request, tenant)
    can_edit = can_manage_tenant(request.user, tenant_obj)
    form = BudgetForm(tenant=tenant_obj)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(_("Budgets are set by the tenant's owners, admins and account manager."))
        form = BudgetForm(request.POST, tenant=tenant_obj)
        if form.is_valid():
            chosen = list(form.cleaned_data.pop("channels"))
            data = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
            saved = _budget_save(
                form,
                BudgetSerializer(data=data),
                lambda fields: budget_create(actor=request.user, tenant=tenant_obj, channels=chosen, **fields),
            )
            if saved is not None:
                messages.success(request, _("Budget created."))
                return redirect("portal:budgets", tenant=tenant_obj.slug)
    states = budget_states(
        list(
            Budget.objects.filter(tenant=tenant_obj)
            .select_related("tenant")
            .prefetch_related("channels")
            .order_by("name")
        )
    )
    return render(
        request,
        "billing/budgets.html",
        {
            "tenant": tenant_obj,
            "states": states,
            "form": form,
            "can_edit": can_edit,
            "alerts": BudgetAlert.objects.filter(budget__tenant=tenant_obj).select_related("budget")[:20],
            "anomalies": Anomaly.objects.filter(tenant=tenant_obj).order_by("-window_start")[:20],
            "raises": BudgetRaiseRequest.objects.filter(budget__tenant=tenant_obj).select_related("budget")[:20],
            "decides_raises": manages_as_staff(request.user, tenant_obj),
        },
    )


@login_required
def channels(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = _tenant(request, tenant)
    can_edit = can_manage_tenant(request.user, tenant_obj)
    form = ChannelForm()
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(_("Channels are set by the tenant's owners, admins and account manager."))
        form = ChannelForm(request.POST)
        if form.is_valid():
            body = ChannelSerializer(data=form.cleaned_data)
            if body.is_valid():
                data = dict(body.validated_data)
                data.pop("tenant", None)
                with transaction.atomic():
                    channel = NotificationChannel.objects.create(tenant=tenant_obj, **data)
                    audit_record(
                        actor=request.user,
                        action="create",
                        instance=channel,
                        after=audit_snapshot(channel),
                        tenant=tenant_obj,
                    )
                messages.success(request, _("Channel added."))
                return redirect("portal:channels", tenant=tenant_obj.slug)
            for name, problems in body.errors.items():
                form.add_error(name if name in form.fields else None, "; ".join(map(str, problems)))
    rows = (
        NotificationChannel.objects.filter(tenant=tenant_obj)
        .prefetch_related("deliveries")
        .annotate(budget_count=Count("budgets", distinct=True))
    )
    return render(
        request,
        "billing/channels.html",
        {"tenant": tenant_obj, "channels": rows, "form": form, "can_edit": can_edit},
    )


def _budget_save(form: Any, body: BudgetSerializer, save: Callable[[dict[str, Any]], Budget]) -> Budget | None:
    """The budget saved through the API's rules (the serializer, then the budget service), or None with every
    problem put on the form's fields."""
    if not body.is_valid():
        for name, problems in body.errors.items():
            form.add_error(name if name in form.fields else None, "; ".join(map(str, problems)))
        return None
    fields = dict(body.validated_data)
    fields.pop("channels", None)
    fields.pop("tenant", None)
    try:
        return save(fields)
    except BudgetInvalid as exc:
        for name, problems in exc.fields.items():
            form.add_error(name if name in form.fields else None, "; ".join(problems))
        return None


@login_required
def budget_edit(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    """Change a budget's limit, thresholds, action, channels, or pause it; the counters follow at once."""
    tenant_obj = _tenant(request, tenant)
    budget = get_object_or_404(Budget, tenant=tenant_obj, pk=pk)
    if not can_manage_tenant(request.user, tenant_obj):
        raise PermissionDenied(_("Budgets are set by the tenant's owners, admins and account manager."))
    form = BudgetEditForm(initial=BudgetEditForm.initial_for(budget), tenant=tenant_obj, all_channels=True)
    if request.method == "POST":
        form = BudgetEditForm(request.POST, tenant=tenant_obj, all_channels=True)
        if form.is_valid():
            data = dict(form.cleaned_data)
            chosen = list(data.pop("channels"))
            saved = _budget_save(
                form,
                BudgetSerializer(budget, data=data, partial=True),
                lambda fields: budget_update(actor=request.user, budget=budget, channels=chosen, **fields),
            )
            if saved is not None:
                messages.success(request, _("Budget %(name)s saved.") % {"name": saved.name})
                return redirect("portal:budgets", tenant=tenant_obj.slug)
    return render(request, "billing/budget_edit.html", {"tenant": tenant_obj, "budget": budget, "form": form})


def _channel_to_manage(request: HttpRequest, tenant: str, pk: int) -> tuple[Any, NotificationChannel]:
    """(tenant, channel) for someone who sets the tenant's channels; another tenant's channel is a 404."""
    tenant_obj = _tenant(request, tenant)
    channel = get_object_or_404(NotificationChannel, tenant=tenant_obj, pk=pk)
    if not can_manage_tenant(request.user, tenant_obj):
        raise PermissionDenied(_("Channels are set by the tenant's owners, admins and account manager."))
    return tenant_obj, channel


@login_required
@require_POST
def channel_change(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    """Turn a channel off or on (kept, with its deliveries, for the budgets that name it), or remove it."""
    tenant_obj, channel = _channel_to_manage(request, tenant, pk)
    action = request.POST.get("action")
    if action == "remove":
        with transaction.atomic():  # the audit entry and the removal stand or fall together
            audit_record(
                actor=request.user, action="delete", instance=channel, before=audit_snapshot(channel), tenant=tenant_obj
            )
            channel.delete()
        messages.success(request, _("Channel %(name)s removed.") % {"name": channel.name})
    elif action in ("off", "on"):
        audited_update(actor=request.user, instance=channel, changes={"enabled": action == "on"}, tenant=tenant_obj)
        if channel.enabled:
            messages.success(request, _("Channel %(name)s is on: alerts go to it again.") % {"name": channel.name})
        else:
            messages.success(
                request, _("Channel %(name)s is off: no alerts go to it until it is on.") % {"name": channel.name}
            )
    else:
        messages.error(request, _("Choose what to do with the channel."))
    return redirect("portal:channels", tenant=tenant_obj.slug)


@login_required
@require_POST
def channel_test(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    from billing.channels import deliveries_queue, delivery_attempt

    tenant_obj, channel = _channel_to_manage(request, tenant, pk)
    queued = deliveries_queue(
        channels=[channel], payload={"type": "test", "tenant": tenant_obj.slug, "channel": channel.name}, subject="test"
    )
    for delivery in queued:
        delivery.refresh_from_db()
        if delivery.attempts == 0:
            delivery = delivery_attempt(delivery.pk)
        if delivery.status == "sent":
            messages.success(request, _("Test message sent."))
        else:
            messages.error(request, _("The test failed: %(error)s") % {"error": delivery.last_error})
    return redirect("portal:channels", tenant=tenant_obj.slug)


@login_required
@require_POST
def budget_raise_decide(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    from billing.budgets import RaiseRefused, raise_decide

    tenant_obj = _tenant(request, tenant)
    raise_obj = get_object_or_404(BudgetRaiseRequest, budget__tenant=tenant_obj, pk=pk)
    try:
        decided = raise_decide(
            actor=request.user,
            raise_request=raise_obj,
            approve=request.POST.get("action") == "approve",
            note=request.POST.get("note", "")[:2000],
        )
    except RaiseRefused as refused:
        if refused.status == 403:
            raise PermissionDenied(refused.message) from None
        messages.error(request, refused.message)
    else:
        messages.success(request, _("Raise %(status)s.") % {"status": decided.get_status_display()})
    return redirect("portal:budgets", tenant=tenant_obj.slug)
