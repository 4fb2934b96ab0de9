from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class NumberSeries(models.Model):
    """The last number used in one series and year. Numbers come from this row under a lock, inside the
    approving transaction: no gaps (a rolled-back approval returns its number), no duplicates."""

    series = models.CharField(max_length=8)  # INV | CN
    year = models.PositiveIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="number_series_year")]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last}"


class Invoice(models.Model):
    """A legal invoice issued from one closed bill, with a frozen snapshot of seller, buyer, lines, FX and tax.
    Once issued its number and money never change (a database trigger refuses it); corrections are credit notes."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PENDING_APPROVAL = "pending_approval", _("Pending approval")
        ISSUED = "issued", _("Issued")
        PAID = "paid", _("Paid")
        VOID = "void", _("Void")

    bill = models.OneToOneField("billing.Bill", on_delete=models.PROTECT, related_name="invoice")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=20, unique=True, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    period = models.DateField()
    invoice_type = models.CharField(max_length=12)
    currency = models.CharField(max_length=3)
    fx_rate = models.DecimalField(max_digits=20, decimal_places=6)
    fx_rate_date = models.DateField(null=True, blank=True)
    fx_source = models.CharField(max_length=10, blank=True)
    usage_subtotal = models.DecimalField(max_digits=20, decimal_places=4)
    net = models.DecimalField(max_digits=20, decimal_places=4)
    tax_percent = models.DecimalField(max_digits=7, decimal_places=4)
    tax_label = models.CharField(max_length=60, blank=True)
    tax_inclusive = models.BooleanField(default=False)
    tax = models.DecimalField(max_digits=20, decimal_places=4)
    total = models.DecimalField(max_digits=20, decimal_places=4)
    total_usd = models.DecimalField(max_digits=24, decimal_places=6, default=Decimal(0))
    payment_terms_days = models.PositiveIntegerField(default=30)
    seller = models.JSONField(default=dict)
    buyer = models.JSONField(default=dict)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    amount_paid = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    amount_credited = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    rejection_reason = models.TextField(blank=True)
    submitted_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period", "tenant", "id"]
        indexes = [models.Index(fields=["status", "due_date"], name="invoice_status_due")]

    def __str__(self) -> str:
        return self.number or f"draft #{self.pk}"

    @property
    def outstanding(self) -> Decimal:
        return self.total - self.amount_credited - self.amount_paid

    @property
    def pdf_ready(self) -> bool:
        return self.pdf_rendered_at is not None


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12)
    model = models.CharField(max_length=200, blank=True)
    bucket = models.CharField(max_length=12, blank=True)
    project = models.CharField(max_length=200, blank=True)
    period = models.DateField()
    quantity = models.BigIntegerField(null=True, blank=True)
    unit_price = models.DecimalField(max_digits=30, decimal_places=14, null=True, blank=True)
    amount_usd = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")]

    def __str__(self) -> str:
        return f"{self.invoice} #{self.position}"


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    paid_on = models.DateField()
    reference = models.CharField(max_length=200)
    recorded_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice", "paid_on", "id"]

    def __str__(self) -> str:
        return f"{self.invoice} {self.amount} on {self.paid_on}"


class CreditNote(models.Model):
    """A correction of an issued invoice, full (voids it) or partial, with its own gapless series."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=20, unique=True)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    tax = models.DecimalField(max_digits=20, decimal_places=4)
    full = models.BooleanField(default=False)
    reason = models.TextField()
    issue_date = models.DateField()
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    pdf = models.BinaryField(null=True, blank=True, editable=False)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "id"]

    def __str__(self) -> str:
        return self.number
