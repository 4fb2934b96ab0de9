"""Portal pages: a tenant's invoices (list, detail, PDF download) and the finance console (approval queue with
the bill beside the invoice, invoices by status and period, overdue, payments, credit notes, exports)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from import_export import resources

from billing.bills import period_parse
from billing.portal import billing_tenant, line_groups, require_staff
from invoices import services
from invoices.models import CreditNote, Invoice, Payment
from invoices.resources import CreditNoteResource, InvoiceResource, PaymentResource
from invoices.selectors import invoices_for_user
from tenants.roles import ACCOUNT_MANAGERS, FINANCE
from tenants.selectors import has_staff_role, is_staff_member, manages_as_staff, tenants_for_user


def _invoice(request: HttpRequest, tenant: str, pk: int) -> tuple[Any, Invoice]:
    tenant_obj = billing_tenant(request, tenant)
    invoice = get_object_or_404(invoices_for_user(request.user).filter(tenant=tenant_obj), pk=pk)
    return tenant_obj, invoice


@login_required
def invoices(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    shown = Invoice.objects.filter(tenant=tenant_obj).exclude(number__isnull=True).order_by("-period", "-id")
    page = Paginator(shown, 24).get_page(request.GET.get("page"))
    return render(
        request, "invoices/invoices.html", {"tenant": tenant_obj, "page": page, "today": timezone.now().date()}
    )


@login_required
def invoice_detail(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj, invoice = _invoice(request, tenant, pk)
    user = request.user
    if invoice.number is None and not is_staff_member(user):
        raise Http404(_("This invoice has not been issued yet."))
    usage_by_model, other_lines = line_groups(list(invoice.bill.lines.all()))
    return render(
        request,
        "invoices/invoice_detail.html",
        {
            "tenant": tenant_obj,
            "invoice": invoice,
            "bill": invoice.bill,
            "usage_by_model": usage_by_model,
            "other_lines": other_lines,
            "is_finance": has_staff_role(user, FINANCE),
            "can_submit": has_staff_role(user, FINANCE)
            or (has_staff_role(user, ACCOUNT_MANAGERS) and manages_as_staff(user, tenant_obj)),
            "today": timezone.now().date(),
            "beside": _beside_the_bill(invoice),
        },
    )


def _beside_the_bill(invoice: Any) -> list[tuple[str, Any, Any, bool]]:
    """What a reviewer checks before approving: the invoice's frozen figures against its bill's."""
    from billing.templatetags.money import money

    bill = invoice.bill
    rows = [
        (_("Currency"), bill.currency, invoice.currency, bill.currency == invoice.currency),
        (_("Exchange rate"), bill.fx_rate, invoice.fx_rate, bill.fx_rate == invoice.fx_rate),
        (_("Lines"), bill.lines.count(), invoice.lines.count(), bill.lines.count() == invoice.lines.count()),
    ]
    for label, name in ((_("Net"), "net"), (_("Tax"), "tax"), (_("Total"), "total")):
        on_bill, on_invoice = getattr(bill, name), getattr(invoice, name)
        rows.append((label, money(on_bill, bill.currency), money(on_invoice, invoice.currency), on_bill == on_invoice))
    return rows


@login_required
@require_POST
def invoice_action(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    """submit | approve | reject | payment | credit_note, each through its service (which checks the role)."""
    tenant_obj, invoice = _invoice(request, tenant, pk)
    user = request.user
    if not (
        has_staff_role(user, FINANCE) or (has_staff_role(user, ACCOUNT_MANAGERS) and manages_as_staff(user, tenant_obj))
    ):
        raise PermissionDenied(_("Invoices are handled by finance and the tenant's account manager."))
    action = request.POST.get("action", "")
    post = request.POST
    try:
        if action == "submit":
            services.invoice_submit(actor=request.user, invoice=invoice)
            messages.success(request, _("Submitted for approval."))
        elif action == "approve":
            invoice = services.invoice_approve(actor=request.user, invoice=invoice)
            messages.success(request, _("Approved: invoice %(number)s is issued.") % {"number": invoice.number})
        elif action == "reject":
            services.invoice_reject(actor=request.user, invoice=invoice, reason=post.get("reason", ""))
            messages.success(request, _("Rejected: the invoice is a draft again."))
        elif action == "payment":
            services.payment_record(
                actor=request.user,
                invoice=invoice,
                amount=Decimal(post.get("amount", "")),
                paid_on=dt.date.fromisoformat(post.get("paid_on", "")),
                reference=post.get("reference", "").strip()[:200] or "—",
            )
            messages.success(request, _("Payment recorded."))
        elif action == "credit_note":
            amount = post.get("amount", "").strip()
            note = services.credit_note_create(
                actor=request.user,
                invoice=invoice,
                reason=post.get("reason", ""),
                amount=Decimal(amount) if amount else None,
            )
            messages.success(request, _("Credit note %(number)s issued.") % {"number": note.number})
        else:
            messages.error(request, _("Unknown action."))
    except services.InvoiceRuleViolation as refused:
        if refused.status == 403:
            raise PermissionDenied(refused.message) from None
        messages.error(request, refused.message)
    except (InvalidOperation, ValueError):
        messages.error(request, _("Enter an amount and a date (YYYY-MM-DD)."))
    return redirect("portal:invoice", tenant=tenant_obj.slug, pk=invoice.pk)


def _pdf_response(pdf: bytes | memoryview | None, filename: str) -> HttpResponse:
    if pdf is None:
        response = HttpResponse(_("The PDF is still being rendered; reload in a few seconds."), status=409)
        response["Retry-After"] = "5"
        return response
    response = HttpResponse(bytes(pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def invoice_pdf(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    _tenant, invoice = _invoice(request, tenant, pk)
    if invoice.number is None:
        raise Http404(_("A draft has no PDF."))
    return _pdf_response(invoice.pdf if invoice.pdf_ready else None, f"{invoice.number}.pdf")


@login_required
def credit_note_pdf(request: HttpRequest, tenant: str, pk: int) -> HttpResponse:
    tenant_obj = billing_tenant(request, tenant)
    note = get_object_or_404(
        CreditNote.objects.filter(invoice__in=invoices_for_user(request.user), invoice__tenant=tenant_obj), pk=pk
    )
    return _pdf_response(note.pdf if note.pdf_rendered_at else None, f"{note.number}.pdf")


def _staff_invoices(request: HttpRequest) -> Any:
    return Invoice.objects.filter(tenant__in=tenants_for_user(request.user).values("pk")).select_related(
        "tenant", "bill"
    )


@login_required
def finance_invoices(request: HttpRequest) -> HttpResponse:
    """Approval queue, invoices by status and period, overdue invoices, exports."""
    require_staff(request)
    today = timezone.now().date()
    visible = _staff_invoices(request)
    shown = visible
    status = request.GET.get("status", "")
    period = request.GET.get("period", "")
    if status in Invoice.Status.values:
        shown = shown.filter(status=status)
    if period:
        try:
            shown = shown.filter(period=period_parse(period))
        except ValueError:
            period = ""
    page = Paginator(shown.order_by("-period", "tenant__slug", "id"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "invoices/finance_invoices.html",
        {
            "queue": visible.filter(status=Invoice.Status.PENDING_APPROVAL).order_by("submitted_at"),
            "drafts": visible.filter(status=Invoice.Status.DRAFT).count(),
            "overdue": visible.filter(status=Invoice.Status.ISSUED, due_date__lt=today).order_by("due_date"),
            "page": page,
            "status": status,
            "period": period,
            "statuses": Invoice.Status.choices,
            "periods": sorted(
                {f"{p:%Y-%m}" for p in visible.values_list("period", flat=True).distinct()}, reverse=True
            ),
            "today": today,
        },
    )


EXPORTS: dict[str, type[resources.ModelResource]] = {
    "invoices": InvoiceResource,
    "credit_notes": CreditNoteResource,
    "payments": PaymentResource,
}


@login_required
def finance_export(request: HttpRequest) -> HttpResponse:
    """?kind=invoices|credit_notes|payments&format=csv|xlsx[&period=YYYY-MM] for the accounting system."""
    require_staff(request)
    kind = request.GET.get("kind", "invoices")
    file_format = request.GET.get("format", "csv")
    if kind not in EXPORTS or file_format not in ("csv", "xlsx"):
        return HttpResponse(_("kind: invoices, credit_notes or payments; format: csv or xlsx."), status=400)
    invoices_qs = _staff_invoices(request).exclude(number__isnull=True)
    if request.GET.get("period"):
        try:
            invoices_qs = invoices_qs.filter(period=period_parse(request.GET["period"]))
        except ValueError:
            return HttpResponse(_("period: YYYY-MM."), status=400)
    if kind == "invoices":
        rows: Any = invoices_qs.order_by("number")
    elif kind == "credit_notes":
        rows = CreditNote.objects.filter(invoice__in=invoices_qs).select_related("invoice__tenant").order_by("number")
    else:
        rows = (
            Payment.objects.filter(invoice__in=invoices_qs)
            .select_related("invoice__tenant", "recorded_by")
            .order_by("paid_on", "id")
        )
    from core.spreadsheets import spreadsheet_export

    dataset = EXPORTS[kind]().export(rows)
    content_type = (
        "text/csv" if file_format == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response = HttpResponse(spreadsheet_export(dataset, file_format), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="meterline-{kind}.{file_format}"'
    return response
