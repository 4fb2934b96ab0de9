"""Accounting exports (django-import-export): invoices, credit notes and payments as CSV or XLSX."""

from import_export import fields, resources

from invoices.models import CreditNote, Invoice, Payment


class InvoiceResource(resources.ModelResource):
    tenant = fields.Field(attribute="tenant__slug", column_name="tenant")
    buyer = fields.Field(attribute="buyer__legal_name", column_name="buyer")
    buyer_tax_id = fields.Field(attribute="buyer__tax_id", column_name="buyer_tax_id")
    bill = fields.Field(attribute="bill__number", column_name="bill")
    period = fields.Field(column_name="period")
    outstanding = fields.Field(attribute="outstanding", column_name="outstanding")

    class Meta:
        model = Invoice
        fields = (
            "number",
            "status",
            "tenant",
            "buyer",
            "buyer_tax_id",
            "bill",
            "period",
            "invoice_type",
            "issue_date",
            "due_date",
            "currency",
            "usage_subtotal",
            "net",
            "tax_percent",
            "tax_label",
            "tax_inclusive",
            "tax",
            "total",
            "fx_rate",
            "fx_rate_date",
            "fx_source",
            "total_usd",
            "amount_paid",
            "amount_credited",
            "outstanding",
        )
        export_order = fields

    def dehydrate_period(self, invoice: Invoice) -> str:
        return f"{invoice.period:%Y-%m}"

    def dehydrate_buyer(self, invoice: Invoice) -> str:
        return str(invoice.buyer.get("legal_name", ""))

    def dehydrate_buyer_tax_id(self, invoice: Invoice) -> str:
        return str(invoice.buyer.get("tax_id", ""))


class CreditNoteResource(resources.ModelResource):
    invoice = fields.Field(attribute="invoice__number", column_name="invoice")
    tenant = fields.Field(attribute="invoice__tenant__slug", column_name="tenant")
    currency = fields.Field(attribute="invoice__currency", column_name="currency")

    class Meta:
        model = CreditNote
        fields = ("number", "invoice", "tenant", "issue_date", "currency", "amount", "tax", "full", "reason")
        export_order = fields


class PaymentResource(resources.ModelResource):
    invoice = fields.Field(attribute="invoice__number", column_name="invoice")
    tenant = fields.Field(attribute="invoice__tenant__slug", column_name="tenant")
    currency = fields.Field(attribute="invoice__currency", column_name="currency")
    recorded_by = fields.Field(attribute="recorded_by__username", column_name="recorded_by")

    class Meta:
        model = Payment
        fields = ("invoice", "tenant", "paid_on", "currency", "amount", "reference", "recorded_by", "recorded_at")
        export_order = fields
