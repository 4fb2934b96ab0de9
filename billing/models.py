from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


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


class Bill(models.Model):
    """One tenant's (or one split group's) charges for a calendar month in the tenant's time zone (SPEC §7).
    Stored when the month closes; frozen from then on. The open month is computed live as a preview."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")
        INVOICED = "invoiced", _("Invoiced")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="bills")
    number = models.CharField(max_length=120, unique=True)
    period = models.DateField(help_text="First day of the billed month.")
    # Split bills (contract invoice_split): "department:<id>", "project:<id>"; "" for the whole tenant.
    group_key = models.CharField(max_length=40, default="", blank=True)
    group_label = models.CharField(max_length=200, default="", blank=True)
    department = models.ForeignKey(
        "tenants.Department", null=True, blank=True, on_delete=models.PROTECT, related_name="bills"
    )
    project = models.ForeignKey(
        "tenants.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="bills"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLOSED)
    contract = models.ForeignKey(Contract, null=True, blank=True, on_delete=models.PROTECT, related_name="bills")
    currency = models.CharField(max_length=3)
    fx_rate = models.DecimalField(max_digits=20, decimal_places=6)
    fx_rate_date = models.DateField(null=True, blank=True)
    fx_source = models.CharField(max_length=10, blank=True)
    usage_subtotal = models.DecimalField(max_digits=20, decimal_places=4)
    net = models.DecimalField(max_digits=20, decimal_places=4)
    tax_percent = models.DecimalField(max_digits=7, decimal_places=4, default=0)
    tax_label = models.CharField(max_length=60, blank=True)
    tax_inclusive = models.BooleanField(default=False)
    tax = models.DecimalField(max_digits=20, decimal_places=4)
    total = models.DecimalField(max_digits=20, decimal_places=4)
    estimated_amount = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    # Frozen view by project and model: [{"project", "project_name", "model", "tokens", "amount_usd", "amount"}]
    # (informational; the lines are what is charged).
    by_project = models.JSONField(default=list, blank=True)
    closed_at = models.DateTimeField()
    closed_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-period", "tenant", "group_key"]
        constraints = [
            # Exactly one bill per tenant, group and month: the last line of defence of idempotent closing.
            models.UniqueConstraint(fields=["tenant", "period", "group_key"], name="one_bill_per_group_and_month"),
        ]
        indexes = [models.Index(fields=["period", "status"], name="bill_period_status")]

    def __str__(self) -> str:
        return self.number

    @property
    def period_label(self) -> str:
        return f"{self.period:%Y-%m}"


class BillLine(models.Model):
    class Kind(models.TextChoices):
        USAGE = "usage", _("Usage")
        VOLUME_TIER = "volume_tier", _("Volume tier")
        DISCOUNT = "discount", _("Discount")
        COMMITMENT = "commitment", _("Minimum commitment")
        ADJUSTMENT = "adjustment", _("Adjustment")

    class Bucket(models.TextChoices):
        INPUT = "input", _("Input")
        CACHED_INPUT = "cached_input", _("Cached input")
        CACHE_WRITE = "cache_write", _("Cache write")
        OUTPUT = "output", _("Output")
        REASONING = "reasoning", _("Reasoning")

    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    model = models.CharField(max_length=200, blank=True)
    bucket = models.CharField(max_length=12, choices=Bucket.choices, blank=True)
    quantity = models.BigIntegerField(null=True, blank=True)
    # Per 1M tokens in USD after markup or override, exact (not rounded).
    unit_price = models.DecimalField(max_digits=30, decimal_places=14, null=True, blank=True)
    amount_usd = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    # The month the tokens belong to (differs from the bill's period for adjustments).
    period = models.DateField()
    project = models.ForeignKey("tenants.Project", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    fx_rate = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    estimated_quantity = models.BigIntegerField(default=0)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["bill", "position"]
        constraints = [models.UniqueConstraint(fields=["bill", "position"], name="bill_line_position")]

    def __str__(self) -> str:
        return f"{self.bill.number} #{self.position} {self.kind}"


class CloseBlock(models.Model):
    """Why a month could not close for a tenant (no FX rate, unpriced events): shown to finance until the
    month closes."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    period = models.DateField()
    code = models.CharField(max_length=40)
    detail = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period", "tenant"]
        constraints = [models.UniqueConstraint(fields=["tenant", "period"], name="one_close_block_per_month")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.period:%Y-%m}: {self.code}"


class NotificationChannel(models.Model):
    """Where a tenant's alerts go."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook")
        SLACK = "slack", "Slack"
        WECOM = "wecom", _("WeCom")
        DINGTALK = "dingtalk", _("DingTalk")
        FEISHU = "feishu", _("Feishu")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(max_length=500, help_text="email address or URL")
    secret = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Budget(models.Model):
    """A spending or token limit on a scope of a tenant's usage, per calendar day, week or month in the
    tenant's time zone. Real-time counters live in Redis (billing.budgets); they are rebuilt from rollups."""

    class Scope(models.TextChoices):
        TENANT = "tenant", _("Tenant")
        DEPARTMENT = "department", _("Department")
        PROJECT = "project", _("Project")
        API_KEY = "api_key", _("API key")
        ENVIRONMENT = "environment", _("Environment")
        END_USER = "end_user", _("End user")

    class Period(models.TextChoices):
        DAY = "day", pgettext_lazy("budget period", "Day")
        WEEK = "week", pgettext_lazy("budget period", "Week")
        MONTH = "month", pgettext_lazy("budget period", "Month")

    class Action(models.TextChoices):
        NOTIFY = "notify", _("Notify")
        BLOCK = "block", _("Block")
        DOWNGRADE = "downgrade", _("Downgrade")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=12, choices=Scope.choices)
    # What the API names: department code, project slug, key prefix, environment or end user ("" for tenant).
    scope_value = models.CharField(max_length=200, blank=True)
    # The id behind scope_value for department, project and api_key scopes (matching at ingestion by id).
    scope_ref = models.BigIntegerField(null=True, blank=True)
    period = models.CharField(max_length=5, choices=Period.choices)
    limit_amount = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    limit_tokens = models.BigIntegerField(null=True, blank=True)
    thresholds = models.JSONField(default=list)
    action_at_limit = models.CharField(max_length=10, choices=Action.choices, default=Action.NOTIFY)
    downgrade_map = models.JSONField(default=dict, blank=True)
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="budgets")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(limit_amount__isnull=False) & models.Q(limit_tokens__isnull=True))
                | (models.Q(limit_amount__isnull=True) & models.Q(limit_tokens__isnull=False)),
                name="budget_one_limit",
            )
        ]

    def __str__(self) -> str:
        return self.name


class BudgetAlert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info", _("Info")
        WARNING = "warning", _("Warning")
        HIGH = "high", _("High")
        CRITICAL = "critical", _("Critical")

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    threshold = models.PositiveIntegerField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    spent = models.DecimalField(max_digits=28, decimal_places=10)
    limit = models.DecimalField(max_digits=28, decimal_places=10)
    percent = models.DecimalField(max_digits=9, decimal_places=2)
    top_consumers = models.JSONField(default=dict)
    fired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            # Each threshold fires at most once per budget period, also under concurrent ingestion.
            models.UniqueConstraint(fields=["budget", "period_start", "threshold"], name="alert_once_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.threshold}% {self.period_start}"


class Delivery(models.Model):
    """One message to one channel (an alert, an anomaly or a test), retried with backoff for up to 24 hours."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")  # permanent: the receiver refused it
        GAVE_UP = "gave_up", _("Gave up")  # transient failures for 24 hours

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(BudgetAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    subject = models.CharField(max_length=40, default="alert")  # alert | anomaly | test
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} → {self.channel} ({self.status})"


class DeliveryAttempt(models.Model):
    """The delivery log: every attempt with its outcome."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} {'ok' if self.ok else self.error[:40]}"


class BudgetRaiseRequest(models.Model):
    """A tenant admin asks for more budget in the current period; an account manager decides. An approved raise
    adds to the limit until its date, and never beyond the period it was asked in."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="raises")
    period_start = models.DateField()
    amount = models.DecimalField(max_digits=18, decimal_places=4, help_text="billing currency, or tokens")
    until = models.DateField()
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.budget} +{self.amount} until {self.until} ({self.status})"
