from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.money import money_str
from billing.serializers import decimal_str, line_json
from core.serializers import KnownFieldsOnly
from invoices.models import CreditNote, Invoice, Payment


class InvoiceLineSerializer(serializers.Serializer):
    kind = serializers.CharField()
    model = serializers.CharField(allow_null=True)
    bucket = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField(allow_null=True)
    unit_price = serializers.CharField(allow_null=True)
    amount_usd = serializers.CharField(allow_null=True)
    amount = serializers.CharField()
    project = serializers.CharField(allow_null=True)
    period = serializers.CharField()
    description = serializers.CharField()


class PaymentSerializer(KnownFieldsOnly, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    amount = serializers.DecimalField(max_digits=20, decimal_places=4, min_value=0)
    paid_on = serializers.DateField()
    reference = serializers.CharField(max_length=200)

    def to_representation(self, payment: Payment) -> dict[str, Any]:
        return {
            "id": payment.pk,
            "amount": money_str(payment.amount, payment.invoice.currency),
            "paid_on": payment.paid_on.isoformat(),
            "reference": payment.reference,
        }


class CreditNoteCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    amount = serializers.DecimalField(max_digits=20, decimal_places=4, required=False, allow_null=True)
    reason = serializers.CharField(max_length=2000)


class CreditNoteSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    invoice = serializers.IntegerField()
    amount = serializers.CharField()
    tax = serializers.CharField()
    full = serializers.BooleanField()
    reason = serializers.CharField()
    issue_date = serializers.DateField()
    pdf_ready = serializers.BooleanField()

    def to_representation(self, note: CreditNote) -> dict[str, Any]:
        currency = note.invoice.currency
        return {
            "id": note.pk,
            "number": note.number,
            "invoice": note.invoice_id,
            "amount": money_str(note.amount, currency),
            "tax": money_str(note.tax, currency),
            "full": note.full,
            "reason": note.reason,
            "issue_date": note.issue_date.isoformat(),
            "pdf_ready": note.pdf_rendered_at is not None,
        }


class RejectSerializer(KnownFieldsOnly, serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class InvoiceSerializer(serializers.Serializer):
    """An invoice reads like a bill (SPEC §8) plus its dates, payments and pdf_ready."""

    id = serializers.IntegerField()
    number = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=Invoice.Status.choices)
    bill = serializers.IntegerField()
    tenant = serializers.CharField()
    period = serializers.CharField()
    invoice_type = serializers.CharField()
    currency = serializers.CharField()
    fx_rate = serializers.CharField()
    fx_rate_date = serializers.DateField(allow_null=True)
    fx_source = serializers.CharField()
    usage_subtotal = serializers.CharField()
    net = serializers.CharField()
    tax_percent = serializers.CharField()
    tax_label = serializers.CharField()
    tax_inclusive = serializers.BooleanField()
    tax = serializers.CharField()
    total = serializers.CharField()
    issue_date = serializers.DateField(allow_null=True)
    due_date = serializers.DateField(allow_null=True)
    amount_paid = serializers.CharField()
    amount_credited = serializers.CharField()
    outstanding = serializers.CharField()
    overdue = serializers.BooleanField()
    rejection_reason = serializers.CharField()
    seller = serializers.DictField()
    buyer = serializers.DictField()
    pdf_ready = serializers.BooleanField()
    lines = InvoiceLineSerializer(many=True)
    payments = PaymentSerializer(many=True)
    credit_notes = CreditNoteSerializer(many=True)

    def to_representation(self, invoice: Invoice) -> dict[str, Any]:
        from django.utils import timezone

        currency = invoice.currency

        def money(value: Any) -> str:
            return money_str(value, currency)

        return {
            "id": invoice.pk,
            "number": invoice.number,
            "status": invoice.status,
            "bill": invoice.bill_id,
            "tenant": invoice.tenant.slug,
            "period": f"{invoice.period:%Y-%m}",
            "invoice_type": invoice.invoice_type,
            "currency": currency,
            "fx_rate": f"{invoice.fx_rate:.6f}",
            "fx_rate_date": invoice.fx_rate_date.isoformat() if invoice.fx_rate_date else None,
            "fx_source": invoice.fx_source,
            "usage_subtotal": money(invoice.usage_subtotal),
            "net": money(invoice.net),
            "tax_percent": decimal_str(invoice.tax_percent),
            "tax_label": invoice.tax_label,
            "tax_inclusive": invoice.tax_inclusive,
            "tax": money(invoice.tax),
            "total": money(invoice.total),
            "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
            "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
            "amount_paid": money(invoice.amount_paid),
            "amount_credited": money(invoice.amount_credited),
            "outstanding": money(invoice.outstanding),
            "overdue": invoice.status == Invoice.Status.ISSUED
            and invoice.due_date is not None
            and invoice.due_date < timezone.now().date(),
            "rejection_reason": invoice.rejection_reason,
            "seller": invoice.seller,
            "buyer": {k: v for k, v in invoice.buyer.items() if k != "billing_emails"},
            "pdf_ready": invoice.pdf_ready,
            "lines": [
                line_json(line, currency, project=line.project or None, period=f"{invoice.period:%Y-%m}")
                for line in invoice.lines.all()
            ],
            "payments": [PaymentSerializer(p).data for p in invoice.payments.all()],
            "credit_notes": [CreditNoteSerializer(n).data for n in invoice.credit_notes.all()],
        }
