from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _


class FxRate(models.Model):
    """1 unit of `base` = `rate` units of `quote` on `date` (6 dp)."""

    class Source(models.TextChoices):
        ECB = "ecb", "ECB"
        MANUAL = "manual", _("Manual")

    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    date = models.DateField()
    rate = models.DecimalField(max_digits=20, decimal_places=6)
    source = models.CharField(max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["base", "quote", "-date"]
        constraints = [models.UniqueConstraint(fields=["base", "quote", "date"], name="fx_rate_unique_day")]
        # the rate in force: latest date on or before a day, per pair (bills, budgets, /fx-rates?date=)
        indexes = [models.Index(fields=["base", "quote", "-date"], name="fx_rate_in_force")]

    def __str__(self) -> str:
        return f"{self.base}/{self.quote} {self.date} = {self.rate}"


class Contract(models.Model):
    """Commercial terms of one tenant. One is active at a time; a new one takes over from its start date."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        ENDED = "ended", _("Ended")

    class InvoiceType(models.TextChoices):
        VAT_SPECIAL = "vat_special", _("VAT special invoice")
        VAT_NORMAL = "vat_normal", _("VAT normal invoice")
        COMMERCIAL = "commercial", _("Commercial invoice")

    class InvoiceSplit(models.TextChoices):
        TENANT = "tenant", _("One bill per tenant")
        DEPARTMENT = "department", _("One bill per department")
        PROJECT = "project", _("One bill per project")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="contracts")
    number = models.CharField(max_length=60, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    billing_currency = models.CharField(max_length=3)
    markup_percent = models.DecimalField(max_digits=9, decimal_places=4, default=0)
    discount_percent = models.DecimalField(max_digits=9, decimal_places=4, default=0)
    # Graduated: [{"from_amount": "10000", "percent": "5"}, …] in the billing currency, ascending.
    volume_tiers = models.JSONField(default=list, blank=True)
    # [{"model", "input", "cached_input"?, "cache_write"?, "output", "reasoning"?}] per 1M tokens in USD.
    rate_overrides = models.JSONField(default=list, blank=True)
    minimum_monthly_commitment = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    payment_terms_days = models.PositiveIntegerField(default=30)
    tax_percent = models.DecimalField(max_digits=7, decimal_places=4, default=0)
    tax_label = models.CharField(max_length=60, blank=True)
    tax_inclusive = models.BooleanField(default=False)
    invoice_type = models.CharField(max_length=12, choices=InvoiceType.choices, default=InvoiceType.COMMERCIAL)
    invoice_split = models.CharField(max_length=12, choices=InvoiceSplit.choices, default=InvoiceSplit.TENANT)
    late_event_grace_hours = models.PositiveIntegerField(default=72)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "-starts_on", "-id"]
        constraints = [
            # One active contract per tenant, enforced by the database.
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(status="active"), name="one_active_contract_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def is_in_force(self, day: dt.date) -> bool:
        return (
            self.status != self.Status.DRAFT and self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)
        )
