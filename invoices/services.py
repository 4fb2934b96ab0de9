"""Invoice lifecycle (SPEC §8), one function per transition, each under row locks:
draft → pending_approval (submit) → issued (approve: number from the locked series row) → paid (payments);
rejected returns a submitted invoice to draft with a reason; credit notes correct an issued invoice (a full one
voids it). Refusals raise InvoiceRuleViolation with the HTTP status the API answers (403 role, 409 state)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import Bill
from billing.money import quantize_money
from core.audit import audit_record
from invoices.models import CreditNote, Invoice, InvoiceLine, NumberSeries, Payment
from tenants.roles import ACCOUNT_MANAGERS, FINANCE
from tenants.selectors import has_staff_role, manages_as_staff


class InvoiceRuleViolation(Exception):
    def __init__(self, message: str, code: str, status: int = 409, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.fields = fields or {}


def _money(invoice: Invoice) -> dict[str, str]:
    return {"number": invoice.number or "", "status": invoice.status, "total": str(invoice.total)}


def seller_snapshot() -> dict[str, str]:
    return dict(settings.METERLINE_SELLER)


def buyer_snapshot(tenant: Any) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "legal_name": tenant.legal_name or tenant.name,
        "tax_id": tenant.tax_id,
        "address": tenant.address,
        "country": tenant.country,
        "billing_emails": list(tenant.billing_emails or []),
    }


def invoice_create_for_bill(bill: Bill) -> Invoice:
    """The draft invoice of a closed bill (called inside the closing transaction)."""
    contract = bill.contract
    invoice = Invoice.objects.create(
        bill=bill,
        tenant=bill.tenant,
        period=bill.period,
        invoice_type=contract.invoice_type if contract else "commercial",
        currency=bill.currency,
        fx_rate=bill.fx_rate,
        fx_rate_date=bill.fx_rate_date,
        fx_source=bill.fx_source,
        usage_subtotal=bill.usage_subtotal,
        net=bill.net,
        tax_percent=bill.tax_percent,
        tax_label=bill.tax_label,
        tax_inclusive=bill.tax_inclusive,
        tax=bill.tax,
        total=bill.total,
        total_usd=sum((line.amount_usd or Decimal(0) for line in bill.lines.all()), Decimal(0)),
        payment_terms_days=contract.payment_terms_days if contract else 30,
        seller=seller_snapshot(),
        buyer=buyer_snapshot(bill.tenant),
    )
    projects = {bill.project_id: bill.project.name} if bill.project_id and bill.project else {}
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                invoice=invoice,
                position=line.position,
                kind=line.kind,
                model=line.model,
                bucket=line.bucket,
                project=projects.get(line.project_id, "") if line.project_id else "",
                period=line.period,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount_usd=line.amount_usd,
                amount=line.amount,
                description=line.description,
            )
            for line in bill.lines.all()
        ]
    )
    return invoice


def _locked(invoice: Invoice) -> Invoice:
    return Invoice.objects.select_for_update().select_related("tenant", "bill").get(pk=invoice.pk)


def _require_finance(actor: Any, what: str) -> None:
    if not has_staff_role(actor, FINANCE):
        raise InvoiceRuleViolation(f"Only finance {what}.", code="permission_denied", status=403)


def _require_state(invoice: Invoice, *states: str, action: str) -> None:
    if invoice.status not in states:
        raise InvoiceRuleViolation(
            f"Cannot {action} an invoice that is {invoice.status.replace('_', ' ')}.", code="invalid_state"
        )


@transaction.atomic
def invoice_submit(*, actor: Any, invoice: Invoice) -> Invoice:
    """Finance or the tenant's account manager submits a draft for approval."""
    if not (
        has_staff_role(actor, FINANCE)
        or (has_staff_role(actor, ACCOUNT_MANAGERS) and manages_as_staff(actor, invoice.tenant))
    ):
        raise InvoiceRuleViolation(
            "Only finance or the tenant's account manager submits invoices.", "permission_denied", 403
        )
    invoice = _locked(invoice)
    _require_state(invoice, Invoice.Status.DRAFT, action="submit")
    before = _money(invoice)
    invoice.status = Invoice.Status.PENDING_APPROVAL
    invoice.submitted_by = actor
    invoice.submitted_at = timezone.now()
    invoice.rejection_reason = ""
    invoice.save(update_fields=["status", "submitted_by", "submitted_at", "rejection_reason"])
    audit_record(
        actor=actor, action="submit", instance=invoice, before=before, after=_money(invoice), tenant=invoice.tenant
    )
    return invoice


@transaction.atomic
def invoice_reject(*, actor: Any, invoice: Invoice, reason: str) -> Invoice:
    _require_finance(actor, "rejects invoices")
    if not reason.strip():
        raise InvoiceRuleViolation("A rejection needs a reason.", code="reason_required", status=400)
    invoice = _locked(invoice)
    _require_state(invoice, Invoice.Status.PENDING_APPROVAL, action="reject")
    before = _money(invoice)
    invoice.status = Invoice.Status.DRAFT
    invoice.rejection_reason = reason.strip()
    invoice.save(update_fields=["status", "rejection_reason"])
    audit_record(
        actor=actor,
        action="reject",
        instance=invoice,
        before=before,
        after={**_money(invoice), "reason": invoice.rejection_reason},
        tenant=invoice.tenant,
    )
    return invoice


def next_number(series: str, year: int) -> str:
    """The next number of a series and year from its locked counter row (call inside a transaction: a rollback
    returns the number, so there is never a gap)."""
    NumberSeries.objects.get_or_create(series=series, year=year)
    counter = NumberSeries.objects.select_for_update().get(series=series, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return f"{series}-{year}-{counter.last:06d}"


def _local_today(tenant: Any) -> dt.date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(tenant.timezone)).date()


@transaction.atomic
def invoice_approve(*, actor: Any, invoice: Invoice, issued_on: dt.date | None = None) -> Invoice:
    """Finance approves a submitted invoice: it gets its number and dates and becomes issued. With four-eyes on
    (METERLINE_FOUR_EYES, default) the approver must not be the submitter."""
    _require_finance(actor, "approves invoices")
    invoice = _locked(invoice)
    _require_state(invoice, Invoice.Status.PENDING_APPROVAL, action="approve")
    if settings.METERLINE_FOUR_EYES and invoice.submitted_by_id == actor.pk:
        raise InvoiceRuleViolation(
            "Four-eyes: the invoice must be approved by someone other than its submitter.", "four_eyes", 403
        )
    before = _money(invoice)
    issue_date = issued_on or _local_today(invoice.tenant)  # issued_on: demo data only
    invoice.number = next_number("INV", issue_date.year)
    invoice.status = Invoice.Status.ISSUED
    invoice.issue_date = issue_date
    invoice.due_date = issue_date + dt.timedelta(days=invoice.payment_terms_days)
    invoice.approved_by = actor
    invoice.approved_at = timezone.now()
    invoice.save(update_fields=["number", "status", "issue_date", "due_date", "approved_by", "approved_at"])
    Bill.objects.filter(pk=invoice.bill_id).update(status=Bill.Status.INVOICED)
    audit_record(
        actor=actor, action="approve", instance=invoice, before=before, after=_money(invoice), tenant=invoice.tenant
    )
    invoice_id = invoice.pk
    transaction.on_commit(lambda: _render_later("invoice", invoice_id))
    return invoice


def _render_later(kind: str, pk: int) -> None:
    from invoices.tasks import credit_note_render, invoice_render

    (invoice_render if kind == "invoice" else credit_note_render).delay(pk)


@transaction.atomic
def payment_record(*, actor: Any, invoice: Invoice, amount: Decimal, paid_on: dt.date, reference: str) -> Payment:
    """A partial payment keeps the invoice issued; one that covers the rest marks it paid. Paying more than is
    outstanding is refused (record the exact amount; a refund or credit is a separate step), and so is a payment
    already recorded (same amount, day and reference)."""
    _require_finance(actor, "records payments")
    invoice = _locked(invoice)
    amount = Decimal(amount)
    if invoice.payments.filter(amount=amount, paid_on=paid_on, reference=reference).exists():
        # A request sent again (a retry after a timeout, a form sent twice) would count the money twice. Asked
        # first: the retry of a payment that settled the invoice, or left less outstanding, is told just this.
        raise InvoiceRuleViolation(
            f"This payment is already recorded: {amount} {invoice.currency} on {paid_on.isoformat()}, reference "
            f"{reference}. A second payment of the same amount on the same day needs a reference of its own.",
            code="duplicate_payment",
        )
    _require_state(invoice, Invoice.Status.ISSUED, action="record a payment on")
    if not 2000 <= paid_on.year <= 2100:  # the years every date of Meterline's takes
        message = "A payment date between the years 2000 and 2100."
        raise InvoiceRuleViolation(message, code="invalid_date", status=400, fields={"paid_on": [message]})
    if amount <= 0 or amount != quantize_money(amount, invoice.currency):
        raise InvoiceRuleViolation(
            f"A payment is a positive amount in {invoice.currency} with at most its minor digits.",
            code="invalid_amount",
            status=400,
        )
    if amount > invoice.outstanding:
        raise InvoiceRuleViolation(
            f"Overpayment: {amount} {invoice.currency} is more than the {invoice.outstanding} outstanding.",
            code="overpayment",
        )
    payment = Payment.objects.create(
        invoice=invoice, amount=amount, paid_on=paid_on, reference=reference, recorded_by=actor
    )
    before = _money(invoice)
    invoice.amount_paid += amount
    fields = ["amount_paid"]
    if invoice.outstanding == 0:
        invoice.status = Invoice.Status.PAID
        fields.append("status")
    invoice.save(update_fields=fields)
    audit_record(
        actor=actor,
        action="payment",
        instance=invoice,
        before=before,
        after={**_money(invoice), "payment": str(amount), "reference": reference},
        tenant=invoice.tenant,
    )
    return payment


@transaction.atomic
def credit_note_create(
    *, actor: Any, invoice: Invoice, reason: str, amount: Decimal | None = None, issued_on: dt.date | None = None
) -> CreditNote:
    """A credit note of an issued invoice (gross amount, tax included). No amount = full: everything not yet
    credited, and the invoice is void. A partial credit lowers what is outstanding. The same amount for the same
    reason on the same day is refused as sent twice."""
    _require_finance(actor, "issues credit notes")
    if not reason.strip():
        raise InvoiceRuleViolation("A credit note needs a reason.", code="reason_required", status=400)
    invoice = _locked(invoice)
    issue_date = issued_on or _local_today(invoice.tenant)
    repeat = invoice.credit_notes.filter(reason=reason.strip(), issue_date=issue_date)
    if (repeat.filter(full=True) if amount is None else repeat.filter(amount=Decimal(amount))).exists():
        # A request sent again would take a second number of the gapless series for the same correction. Asked
        # first: the retry of a note that voided the invoice, or left less to credit, is told just this.
        raise InvoiceRuleViolation(
            f'This credit note is already issued on {issue_date.isoformat()} for "{reason.strip()}". A second one of '
            "the same amount on the same day needs a reason of its own.",
            code="duplicate_credit_note",
        )
    _require_state(invoice, Invoice.Status.ISSUED, Invoice.Status.PAID, action="credit")
    creditable = invoice.total - invoice.amount_credited
    full = amount is None or Decimal(amount) == creditable
    amount = creditable if amount is None else Decimal(amount)
    if amount <= 0 or amount != quantize_money(amount, invoice.currency) or amount > creditable:
        raise InvoiceRuleViolation(
            f"A credit note is a positive amount of at most {creditable} {invoice.currency}.",
            code="invalid_amount",
            status=400,
        )
    rate = invoice.tax_percent / 100
    # the tax share of a gross amount, by the invoice's own rule
    tax = quantize_money(amount * rate / (1 + rate), invoice.currency) if rate else Decimal(0)
    note = CreditNote.objects.create(
        invoice=invoice,
        number=next_number("CN", issue_date.year),
        amount=amount,
        tax=tax,
        full=full,
        reason=reason.strip(),
        issue_date=issue_date,
        created_by=actor,
    )
    before = _money(invoice)
    invoice.amount_credited += amount
    fields = ["amount_credited"]
    if full:
        invoice.status = Invoice.Status.VOID
        fields.append("status")
    elif invoice.status == Invoice.Status.ISSUED and invoice.outstanding <= 0:
        invoice.status = Invoice.Status.PAID
        fields.append("status")
    invoice.save(update_fields=fields)
    audit_record(
        actor=actor,
        action="credit_note",
        instance=invoice,
        before=before,
        after={**_money(invoice), "credit_note": note.number, "amount": str(amount), "reason": note.reason},
        tenant=invoice.tenant,
    )
    note_id = note.pk
    transaction.on_commit(lambda: _render_later("credit_note", note_id))
    return note


def invoices_overdue(today: dt.date | None = None) -> Any:
    today = today or timezone.now().date()
    return Invoice.objects.filter(status=Invoice.Status.ISSUED, due_date__lt=today)


def overdue_reminders_send(*, now: dt.datetime | None = None, every: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Remind the tenant's billing emails of each overdue invoice, at most once a week per invoice."""
    from django.core.mail import send_mail
    from django.db.models import Q

    now = now or timezone.now()
    sent = 0
    due = invoices_overdue(now.date()).filter(Q(reminded_at__isnull=True) | Q(reminded_at__lt=now - every))
    for invoice in due.select_related("tenant"):
        recipients = list(invoice.buyer.get("billing_emails") or invoice.tenant.billing_emails or [])
        if not recipients:
            continue
        send_mail(
            subject=f"Overdue: invoice {invoice.number} ({invoice.outstanding} {invoice.currency})",
            message=(
                f"Invoice {invoice.number} of {invoice.issue_date} for {invoice.period:%Y-%m} was due on "
                f"{invoice.due_date}. Outstanding: {invoice.outstanding} {invoice.currency}.\n"
                f"发票 {invoice.number} 已于 {invoice.due_date} 到期，"
                f"未付金额 {invoice.outstanding} {invoice.currency}。"
            ),
            from_email=None,
            recipient_list=recipients,
        )
        Invoice.objects.filter(pk=invoice.pk).update(reminded_at=now)
        sent += 1
    return sent
