from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def price_book_currency(value: str) -> None:
    """Every price in the book is in USD (bills convert at close): a row in another currency is refused, not
    stored as if it were USD."""
    if value != "USD":
        raise ValidationError(_("The price book is in USD: convert the price to USD first."), code="currency")


GLOB_CHARACTERS = "*?[]"


def price_aliases(value: object) -> None:
    """A row's aliases: a list of names; a glob among them (`*`, `?`, `[…]`) keeps at least three plain characters,
    so that no pattern (`*`, `*-*`) takes every model — an unknown model stays unpriced until it has a price."""
    if not isinstance(value, list) or not all(isinstance(alias, str) and alias.strip() for alias in value):
        raise ValidationError(_("A list of model names."), code="aliases")
    for alias in value:
        literal = re.sub(r"\[[^\]]*\]?", "", alias)  # a [set] stands for one character of many
        if any(ch in GLOB_CHARACTERS for ch in alias) and len([c for c in literal if c not in GLOB_CHARACTERS]) < 3:
            raise ValidationError(
                _("%(alias)s would match almost any model: keep at least three characters besides *, ? and [sets]."),
                code="aliases",
                params={"alias": alias},
            )


class ModelPrice(models.Model):
    """One effective-dated row of the price book. A changed price is a new row; history is never edited."""

    class Source(models.TextChoices):
        GENAI_PRICES = "genai-prices", "genai-prices"
        MANUAL = "manual", _("Manual")
        IMPORT = "import", _("Import")

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    # Exact names and glob patterns such as "gpt-4o-2024-*".
    aliases = models.JSONField(default=list, blank=True, validators=[price_aliases])
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD", validators=[price_book_currency])
    # Per 1M tokens (per_request: per call); never negative, whichever way a row arrives (form, API, import).
    input = models.DecimalField(max_digits=20, decimal_places=8, validators=[MinValueValidator(0)])
    cached_input = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    cache_write = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    output = models.DecimalField(max_digits=20, decimal_places=8, validators=[MinValueValidator(0)])
    reasoning = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    per_request = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model", "effective_from"], name="price_unique_start"),
        ]
        indexes = [models.Index(fields=["model"])]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"

    def is_effective(self, at: dt.datetime) -> bool:
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)

    def card(self) -> dict[str, Decimal | None]:
        return {
            "input": self.input,
            "cached_input": self.cached_input,
            "cache_write": self.cache_write,
            "output": self.output,
            "reasoning": self.reasoning,
            "per_request": self.per_request,
        }


class UsageEvent(models.Model):
    """One LLM call. Append-only; on PostgreSQL partitioned by month on occurred_at with primary key
    (tenant_id, occurred_at, id) — see migration 0002."""

    class Status(models.TextChoices):
        SUCCESS = "success", _("Success")
        ERROR = "error", _("Error")

    class RatingStatus(models.TextChoices):
        PRICED = "priced", _("Priced")
        UNPRICED = "unpriced", _("Unpriced")

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    project = models.ForeignKey("tenants.Project", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    api_key = models.ForeignKey(
        "tenants.ApiKey", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    event_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    feature = models.CharField(max_length=200, blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    prompt_template = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=200, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCESS)
    cost = models.DecimalField(max_digits=28, decimal_places=10, default=Decimal(0))
    price = models.ForeignKey(
        ModelPrice, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    rating_status = models.CharField(max_length=10, choices=RatingStatus.choices)
    estimated = models.BooleanField(default=False)
    estimate_method = models.CharField(max_length=40, blank=True)
    # Internal tenants and projects: metered and shown, never billed.
    billable = models.BooleanField(default=True)
    raw_usage = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        managed = True
        # Cursor pagination (newest first) reads the primary key (tenant_id, occurred_at, id) backwards.
        indexes = [models.Index(fields=["tenant", "event_id"], name="event_tenant_event_id")]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.model})"


class EventKey(models.Model):
    """Permanent idempotency of (tenant, event_id), kept outside the partitioned events table so that the
    rule holds across months. content_hash decides duplicate vs conflict."""

    # No index of its own: the unique (tenant, event_id) index serves every look-up by tenant.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    event_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)
    estimated = models.BooleanField(default=False)
    # The estimate's content_hash once real usage replaced it: a late repeat of the estimate is a duplicate.
    # A database default, so that the ingest statements, which claim new ids, leave it out.
    corrected_hash = models.CharField(max_length=64, default="", db_default="", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "event_id"], name="event_key_unique")]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.event_id}"


# The summed columns of every rollup table, in order (ingest, flush, verification and the bench share them).
ROLLUP_SUMS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "requests",
    "errors",
    "cost",
    "billable_cost",
    "estimated_requests",
    "estimated_cost",
    "unpriced_requests",
)


class RollupBase(models.Model):
    """Sums of events in a bucket. Kept exact by the ingest transaction (INSERT … ON CONFLICT DO UPDATE)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=28, decimal_places=10, default=Decimal(0))
    billable_cost = models.DecimalField(max_digits=28, decimal_places=10, default=Decimal(0))
    estimated_requests = models.BigIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=28, decimal_places=10, default=Decimal(0))
    unpriced_requests = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageRollup(RollupBase):
    """Per (tenant, project, api key, model, feature, environment — and provider, price row, rating status,
    estimated, billable) and hour (UTC) or day (tenant-local). api_key_id 0, price_id 0 and '' stand for "none" so
    that the bucket key has no NULLs."""

    class Grain(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket = models.DateTimeField(help_text="Start of the hour (UTC) or of the tenant-local day.")
    day = models.DateField(help_text="Tenant-local date of the bucket.")
    project = models.ForeignKey("tenants.Project", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    api_key_id_value = models.BigIntegerField(default=0, db_column="api_key_id")
    model = models.CharField(max_length=200)
    feature = models.CharField(max_length=200, default="")
    environment = models.CharField(max_length=200, default="")
    # How the events were rated and whether they are billed: a bill is computed from the daily rows alone.
    provider = models.CharField(max_length=100, default="")
    price_id_value = models.BigIntegerField(
        default=0, db_column="price_id", help_text="The price-book row that rated the events; 0 for none."
    )
    rating_status = models.CharField(max_length=10, default="priced")
    estimated = models.BooleanField(default=False)
    billable = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "tenant",
                    "grain",
                    "bucket",
                    "project",
                    "api_key_id_value",
                    "model",
                    "feature",
                    "environment",
                    "provider",
                    "price_id_value",
                    "rating_status",
                    "estimated",
                    "billable",
                ],
                name="usage_rollup_bucket",
            )
        ]
        indexes = [models.Index(fields=["tenant", "grain", "day"], name="usage_rollup_day")]

    def __str__(self) -> str:
        return f"{self.grain} {self.bucket:%Y-%m-%d %H:%M} {self.model}"


class EndUserRollup(RollupBase):
    """Per (tenant, end user, tenant-local day)."""

    day = models.DateField()
    end_user = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "end_user"], name="end_user_rollup_bucket")]

    def __str__(self) -> str:
        return f"{self.day} {self.end_user}"


class RollupDelta(RollupBase):
    """Pending additions to the rollups (PostgreSQL). Ingestion only appends here — no two senders ever
    wait on the same rollup row — and `rollups_flush` folds the queue into the rollups in one statement,
    under one lock: before every usage read, and every second from beat."""

    # The queue is only ever taken whole (rollups_flush): no index beyond the key, whose upkeep every event pays.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    # usage (a usage-rollup bucket: grain, bucket, day), end_user (day, end_user), or event: one event's
    # addition to all three of its buckets in one row (bucket = its UTC hour, hour_day = that hour's local date,
    # day_bucket = the start of its local day, day = that date) — the single-event path writes one row, not three.
    kind = models.CharField(max_length=8)
    grain = models.CharField(max_length=4, blank=True)
    bucket = models.DateTimeField(null=True)
    day = models.DateField()
    day_bucket = models.DateTimeField(null=True)
    hour_day = models.DateField(null=True)
    project_id_value = models.BigIntegerField(default=0, db_column="project_id")
    api_key_id_value = models.BigIntegerField(default=0, db_column="api_key_id")
    model = models.CharField(max_length=200, blank=True)
    feature = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    price_id_value = models.BigIntegerField(default=0, db_column="price_id")
    rating_status = models.CharField(max_length=10, blank=True)
    estimated = models.BooleanField(default=False)
    billable = models.BooleanField(default=True)
    end_user = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.day}"


class Anomaly(models.Model):
    """Unusual usage found by the hourly and daily scans (metering.anomalies), one per (tenant, kind, scope,
    window) — a rescan never duplicates it."""

    class Kind(models.TextChoices):
        DAILY_COST_SPIKE = "daily_cost_spike", _("Daily cost spike")
        END_USER_SPIKE = "end_user_spike", _("End user hourly spike")
        REQUEST_OUTLIER = "request_outlier", _("Oversized request")
        NIGHT_USAGE = "night_usage", _("Night-time usage")
        IDENTICAL_BURST = "identical_burst", _("Burst of identical calls")
        MONTH_GROWTH = "month_growth", _("Month-over-month growth")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="anomalies")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    scope = models.CharField(max_length=300, help_text='e.g. "tenant", "end_user:u-7", "project:chatbot"')
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    observed = models.DecimalField(max_digits=28, decimal_places=10)
    expected = models.DecimalField(max_digits=28, decimal_places=10)
    ratio = models.DecimalField(max_digits=14, decimal_places=2)
    unit = models.CharField(max_length=20, default="USD")
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-window_start", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "kind", "scope", "window_start"], name="anomaly_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope} {self.window_start:%Y-%m-%d %H:%M}"


class UsageExport(models.Model):
    """A usage export built in the background (too many events to answer in one request); the file
    is kept in the database so that web and worker processes need no shared disk."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="usage_exports")
    requested_by = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="usage_exports")
    format = models.CharField(max_length=4, choices=Format.choices)
    # The query as it was on screen: start, end, filters and the projects the requester could see.
    query = models.JSONField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    filename = models.CharField(max_length=200, blank=True)
    content = models.BinaryField(null=True, blank=True, editable=False)
    size = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "requested_by", "-created_at"], name="usage_export_owner")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.format} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.READY:
            return 100
        return min(99, self.rows_done * 100 // self.rows_total) if self.rows_total else 0

    @property
    def pending(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class ProviderStatement(models.Model):
    """A provider's own usage or cost export (OpenAI, Anthropic, or a generic CSV), imported by finance to
    reconcile against what Meterline metered (metering.reconciliation)."""

    class Format(models.TextChoices):
        OPENAI_COSTS_JSON = "openai_costs_json", _("OpenAI costs (API JSON)")
        OPENAI_USAGE_JSON = "openai_usage_json", _("OpenAI completions usage (API JSON)")
        OPENAI_COSTS_CSV = "openai_costs_csv", _("OpenAI costs (dashboard CSV)")
        OPENAI_USAGE_CSV = "openai_usage_csv", _("OpenAI usage (dashboard CSV)")
        ANTHROPIC_USAGE_JSON = "anthropic_usage_json", _("Anthropic usage report (JSON)")
        ANTHROPIC_COST_JSON = "anthropic_cost_json", _("Anthropic cost report (JSON)")
        GENERIC_CSV = "generic_csv", _("Generic CSV")

    provider = models.CharField(max_length=40)
    format = models.CharField(max_length=24, choices=Format.choices)
    # The tenant whose usage the provider account carries; empty: the provider account serves every tenant.
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="provider_statements"
    )
    filename = models.CharField(max_length=255, blank=True)
    period_start = models.DateField()
    period_end = models.DateField()
    tolerance_percent = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal(1))
    imported_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)
    line_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} {self.period_start}–{self.period_end}"


class ProviderStatementLine(models.Model):
    """One row of a provider's export: a UTC day × model (× project / key where the export has them)."""

    statement = models.ForeignKey(ProviderStatement, on_delete=models.CASCADE, related_name="lines")
    day = models.DateField()
    model = models.CharField(max_length=200)
    project = models.CharField(max_length=200, blank=True)
    api_key = models.CharField(max_length=200, blank=True)
    input_tokens = models.BigIntegerField(null=True)  # uncached
    cached_input_tokens = models.BigIntegerField(null=True)
    cache_write_tokens = models.BigIntegerField(null=True)
    output_tokens = models.BigIntegerField(null=True)
    requests = models.BigIntegerField(null=True)
    cost = models.DecimalField(max_digits=28, decimal_places=10, null=True)  # USD

    class Meta:
        indexes = [models.Index(fields=["statement", "day", "model"], name="statement_line_day_model")]

    def __str__(self) -> str:
        return f"{self.day} {self.model}"
