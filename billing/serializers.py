from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.bills import period_parse
from billing.channels import private_target
from billing.models import (
    Bill,
    BillLine,
    Budget,
    BudgetAlert,
    BudgetRaiseRequest,
    Contract,
    Delivery,
    FxRate,
    NotificationChannel,
)
from billing.money import money_str
from core.serializers import KnownFieldsOnly
from tenants.validators import validate_currency


def _currency(value: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        validate_currency(value)
    except ValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class FxRateSerializer(serializers.ModelSerializer):
    class Meta:
        model = FxRate
        fields = ["id", "base", "quote", "date", "rate", "source", "created_at"]
        read_only_fields = fields


class FxRateCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    base = serializers.CharField(max_length=3, validators=[_currency])
    quote = serializers.CharField(max_length=3, validators=[_currency])
    date = serializers.DateField()
    rate = serializers.DecimalField(max_digits=20, decimal_places=6, min_value=0)

    def validate(self, attrs: dict) -> dict:
        if attrs["base"] == attrs["quote"]:
            raise serializers.ValidationError({"quote": ["Differs from base."]})
        if attrs["rate"] <= 0:
            raise serializers.ValidationError({"rate": ["Greater than zero."]})
        return attrs


class VolumeTierSerializer(KnownFieldsOnly, serializers.Serializer):
    from_amount = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=0)
    percent = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=0, max_value=100)


class RateOverrideSerializer(KnownFieldsOnly, serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0)
    output = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0)
    cached_input = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True
    )
    cache_write = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True
    )
    reasoning = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True)


def _json_safe(items: list[dict]) -> list[dict]:
    return [
        {
            key: (str(value) if value is not None and not isinstance(value, str) else value)
            for key, value in item.items()
        }
        for item in items
    ]


class ContractSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    billing_currency = serializers.CharField(max_length=3, validators=[_currency], required=False)
    volume_tiers = VolumeTierSerializer(many=True, required=False)
    rate_overrides = RateOverrideSerializer(many=True, required=False)
    markup_percent = serializers.DecimalField(
        max_digits=9, decimal_places=4, min_value=0, max_value=1000, required=False
    )
    discount_percent = serializers.DecimalField(
        max_digits=9, decimal_places=4, min_value=0, max_value=100, required=False
    )
    tax_percent = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=0, max_value=100, required=False)
    minimum_monthly_commitment = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=0, required=False)

    class Meta:
        model = Contract
        fields = [
            "id",
            "tenant",
            "number",
            "status",
            "starts_on",
            "ends_on",
            "billing_currency",
            "markup_percent",
            "discount_percent",
            "volume_tiers",
            "rate_overrides",
            "minimum_monthly_commitment",
            "payment_terms_days",
            "tax_percent",
            "tax_label",
            "tax_inclusive",
            "invoice_type",
            "invoice_split",
            "late_event_grace_hours",
            "created_at",
            "activated_at",
        ]
        read_only_fields = ["id", "tenant", "number", "status", "ends_on", "created_at", "activated_at"]

    def validate_volume_tiers(self, tiers: list[dict]) -> list[dict]:
        starts = [tier["from_amount"] for tier in tiers]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise serializers.ValidationError("Tiers ascend by from_amount, each starting once.")
        return _json_safe(tiers)

    def validate_rate_overrides(self, overrides: list[dict]) -> list[dict]:
        models_named = [item["model"].lower() for item in overrides]
        if len(set(models_named)) != len(models_named):
            raise serializers.ValidationError("One override per model.")
        return _json_safe(overrides)


def decimal_str(value: Decimal, min_places: int = 0) -> str:
    """Exact, without exponent or trailing zeros beyond min_places: 6 → "6", 3 (min 6) → "3.000000"."""
    text = format(value.normalize(), "f")
    places = len(text.partition(".")[2])
    if places < min_places:
        text = f"{value:.{min_places}f}"
    return text


class BillLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BillLine.Kind.choices)
    model = serializers.CharField(allow_null=True)
    bucket = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField(allow_null=True)
    unit_price = serializers.CharField(allow_null=True, help_text="per 1M tokens in USD, exact")
    amount_usd = serializers.CharField(allow_null=True, help_text="before FX, 6 dp, for reference")
    amount = serializers.CharField(help_text="billing currency, exactly its minor digits")
    estimated_quantity = serializers.IntegerField()
    project = serializers.CharField(allow_null=True)
    period = serializers.CharField()
    description = serializers.CharField()

    def to_representation(self, line: Any) -> dict[str, Any]:
        body = line_json(
            line, self.context["currency"], project=self.context.get("project"), period=self.context["period"]
        )
        body["estimated_quantity"] = line.estimated_quantity
        return body


def line_json(line: Any, currency: str, *, project: str | None, period: str) -> dict[str, Any]:
    """A bill or invoice line as SPEC §7 shows it: amounts as strings with the currency's exact minor digits."""
    return {
        "kind": line.kind,
        "model": line.model or None,
        "bucket": line.bucket or None,
        "quantity": line.quantity,
        "unit_price": decimal_str(line.unit_price, 6) if line.unit_price is not None else None,
        "amount_usd": f"{line.amount_usd:.6f}" if line.amount_usd is not None else None,
        "amount": money_str(line.amount, currency),
        "project": project,
        "period": f"{line.period:%Y-%m}" if line.period else period,
        "description": line.description,
    }


class ForecastSerializer(serializers.Serializer):
    usage_subtotal = serializers.CharField()
    net = serializers.CharField()
    tax = serializers.CharField()
    total = serializers.CharField()


class BillSerializer(serializers.Serializer):
    """A bill as SPEC §7 shows it (stored bills and the open month's preview alike)."""

    id = serializers.IntegerField(allow_null=True)
    number = serializers.CharField()
    tenant = serializers.CharField()
    period = serializers.CharField()
    status = serializers.ChoiceField(choices=Bill.Status.choices)
    group = serializers.CharField(allow_null=True, help_text="department or project of a split bill")
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
    estimated_amount = serializers.CharField()
    invoice = serializers.IntegerField(allow_null=True)
    contract = serializers.CharField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    lines = BillLineSerializer(many=True)
    by_project = serializers.ListField(child=serializers.DictField())

    def to_representation(self, bill: Any) -> dict[str, Any]:
        """`bill` is a stored Bill or a billing.bills.BillDraft (the open month)."""
        from billing.models import Bill as BillModel

        if isinstance(bill, BillModel):
            currency, period, lines = bill.currency, bill.period, list(bill.lines.all())
            totals: Any = bill
            fx_rate, fx_date, fx_source = bill.fx_rate, bill.fx_rate_date, bill.fx_source
            group = bill.group_label or None
            project = bill.project.slug if bill.project is not None else None
            contract = bill.contract.number if bill.contract is not None else None
            tax_percent, tax_label, tax_inclusive = bill.tax_percent, bill.tax_label, bill.tax_inclusive
            extra: dict[str, Any] = {
                "id": bill.pk,
                "number": bill.number,
                "status": bill.status,
                "closed_at": bill.closed_at,
            }
            by_project = bill.by_project
            invoice = bill.invoice.pk if hasattr(bill, "invoice") else None
        else:  # a draft: the open month
            currency, period, lines, totals = bill.currency, bill.period, bill.totals.lines, bill.totals
            fx_rate, fx_date, fx_source = bill.fx.rate, bill.fx.date, bill.fx.source
            group = bill.group.label or None
            project = None
            contract = bill.contract.number if bill.contract else None
            c = bill.contract
            tax_percent = c.tax_percent if c else Decimal(0)
            tax_label, tax_inclusive = (c.tax_label, c.tax_inclusive) if c else ("", False)
            extra = {"id": None, "number": bill.number, "status": "open", "closed_at": None}
            by_project = bill.by_project
            invoice = None
        label = f"{period:%Y-%m}"
        line_context = {"currency": currency, "period": label, "project": project}
        return {
            "id": extra["id"],
            "number": extra["number"],
            "tenant": bill.tenant.slug,
            "period": label,
            "status": extra["status"],
            "group": group,
            "currency": currency,
            "fx_rate": f"{fx_rate:.6f}",
            "fx_rate_date": fx_date.isoformat() if fx_date else None,
            "fx_source": fx_source,
            "usage_subtotal": money_str(totals.usage_subtotal, currency),
            "net": money_str(totals.net, currency),
            "tax_percent": decimal_str(tax_percent),
            "tax_label": tax_label,
            "tax_inclusive": tax_inclusive,
            "tax": money_str(totals.tax, currency),
            "total": money_str(totals.total, currency),
            "estimated_amount": money_str(totals.estimated_amount, currency),
            "invoice": invoice,
            "contract": contract,
            "closed_at": extra["closed_at"].isoformat().replace("+00:00", "Z") if extra["closed_at"] else None,
            "lines": [BillLineSerializer(line, context=line_context).data for line in lines],
            "by_project": by_project,
        }


class BillPreviewSerializer(BillSerializer):
    as_of = serializers.DateTimeField()
    elapsed_fraction = serializers.CharField(help_text="share of the month gone, 0–1")
    forecast = ForecastSerializer(allow_null=True, help_text="month-end forecast at the month-to-date pace")

    def to_representation(self, preview: Any) -> dict[str, Any]:
        body = super().to_representation(preview.bills[0])
        forecast = preview.forecast
        body["as_of"] = preview.as_of.isoformat().replace("+00:00", "Z")
        body["elapsed_fraction"] = str(preview.elapsed_fraction)
        body["forecast"] = (
            {
                name: money_str(getattr(forecast, name), preview.currency)
                for name in ("usage_subtotal", "net", "tax", "total")
            }
            if forecast is not None
            else None
        )
        return body


class BillCloseSerializer(KnownFieldsOnly, serializers.Serializer):
    period = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", error_messages={"invalid": "A month as YYYY-MM."})
    tenant = serializers.CharField(required=False, help_text="slug; all tenants when absent")

    def validate_period(self, value: str) -> str:
        try:
            period_parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class BillCloseResultSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    period = serializers.CharField()
    status = serializers.CharField()
    bills = serializers.ListField(child=serializers.CharField(), help_text="bill numbers")
    error = serializers.DictField(allow_null=True)


class BudgetSerializer(KnownFieldsOnly, serializers.Serializer):
    """POST/PATCH body and read shape of /api/v1/budgets (SPEC §6)."""

    id = serializers.IntegerField(read_only=True)
    tenant = serializers.CharField(required=False, help_text="tenant slug")
    name = serializers.CharField(max_length=200)
    scope = serializers.ChoiceField(choices=Budget.Scope.choices)
    scope_value = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    period = serializers.ChoiceField(choices=Budget.Period.choices)
    limit_amount = serializers.DecimalField(
        max_digits=18, decimal_places=4, min_value=Decimal("0.01"), required=False, allow_null=True
    )
    limit_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000), required=False, default=[50, 80, 95, 100]
    )
    action_at_limit = serializers.ChoiceField(choices=Budget.Action.choices, default=Budget.Action.NOTIFY)
    downgrade_map = serializers.DictField(child=serializers.CharField(max_length=200), required=False, default=dict)
    channels = serializers.ListField(child=serializers.IntegerField(), required=False)
    active = serializers.BooleanField(required=False, default=True)
    currency = serializers.CharField(read_only=True)
    spent = serializers.CharField(read_only=True)
    percent = serializers.CharField(read_only=True)
    period_start = serializers.DateField(read_only=True)
    period_end = serializers.DateField(read_only=True)

    def validate_thresholds(self, value: list[int]) -> list[int]:
        if value != sorted(set(value)):
            raise serializers.ValidationError("Ascending percents, each once.")
        return value

    def validate(self, attrs: dict) -> dict:
        partial = self.partial and self.instance is not None
        instance: Any = self.instance
        amount = attrs.get("limit_amount", instance.limit_amount if partial else None)
        tokens = attrs.get("limit_tokens", instance.limit_tokens if partial else None)
        if (amount is None) == (tokens is None):
            raise serializers.ValidationError({"limit_amount": ["Give limit_amount or limit_tokens, not both."]})
        action = attrs.get("action_at_limit", instance.action_at_limit if partial else "notify")
        mapping = attrs.get("downgrade_map", instance.downgrade_map if partial else {})
        if action == Budget.Action.DOWNGRADE and not mapping:
            raise serializers.ValidationError({"downgrade_map": ["A downgrade budget maps models to cheaper ones."]})
        return attrs

    def to_representation(self, state: Any) -> dict[str, Any]:
        budget = state.budget
        return {
            "id": budget.pk,
            "tenant": budget.tenant.slug,
            "name": budget.name,
            "scope": budget.scope,
            "scope_value": budget.scope_value,
            "period": budget.period,
            "limit_amount": money_str(budget.limit_amount, state.currency) if budget.limit_amount is not None else None,
            "limit_tokens": budget.limit_tokens,
            "thresholds": budget.thresholds,
            "action_at_limit": budget.action_at_limit,
            "downgrade_map": budget.downgrade_map,
            "channels": [c.pk for c in budget.channels.all()],
            "active": budget.active,
            "currency": state.currency if budget.limit_amount is not None else "tokens",
            "spent": money_str(state.spent, state.currency)
            if budget.limit_amount is not None
            else str(int(state.spent)),
            "percent": str(state.percent),
            "period_start": state.period_start.isoformat(),
            "period_end": state.period_end.isoformat(),
        }


class QuotaCheckSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    api_key = serializers.CharField(max_length=40, required=False, help_text="key prefix; implied by a project key")
    tenant = serializers.CharField(required=False, help_text="tenant slug (gateway tokens)")
    end_user = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    estimated_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)


class QuotaBudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.CharField()
    period = serializers.CharField()
    limit = serializers.CharField()
    spent = serializers.CharField()
    remaining = serializers.CharField()
    percent = serializers.CharField()


class QuotaDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["allow", "block", "downgrade"])
    model = serializers.CharField()
    reason = serializers.CharField()
    budgets = QuotaBudgetSerializer(many=True)


class ChannelSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    tenant = serializers.CharField(required=False, help_text="tenant slug", write_only=True)
    secret = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=200)
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = NotificationChannel
        fields = ["id", "tenant", "name", "kind", "target", "secret", "has_secret", "enabled", "created_at"]
        read_only_fields = ["id", "has_secret", "created_at"]

    def get_has_secret(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)

    def validate(self, attrs: dict) -> dict:
        from django.core.exceptions import ValidationError as DjangoValidationError
        from django.core.validators import EmailValidator, URLValidator

        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        target = attrs.get("target", getattr(self.instance, "target", ""))
        try:
            if kind == NotificationChannel.Kind.EMAIL:
                EmailValidator()(target)
            else:
                URLValidator(schemes=["http", "https"])(target)
        except DjangoValidationError:
            raise serializers.ValidationError(
                {"target": ["An email address." if kind == "email" else "An http(s) URL."]}
            ) from None
        if kind != NotificationChannel.Kind.EMAIL and private_target(target, resolve=False) is not None:
            raise serializers.ValidationError(
                {"target": ["An address on the server's own network; channels reach public addresses only."]}
            )
        return attrs

    def to_representation(self, channel: NotificationChannel) -> dict[str, Any]:
        body = super().to_representation(channel)
        body["tenant"] = channel.tenant.slug
        return body


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "subject",
            "status",
            "attempts",
            "last_error",
            "next_attempt_at",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="budget.tenant.slug", read_only=True)
    budget_name = serializers.CharField(source="budget.name", read_only=True)

    class Meta:
        model = BudgetAlert
        fields = [
            "id",
            "tenant",
            "budget",
            "budget_name",
            "period_start",
            "threshold",
            "severity",
            "spent",
            "limit",
            "percent",
            "top_consumers",
            "fired_at",
        ]
        read_only_fields = fields


class BudgetRaiseSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    budget = serializers.PrimaryKeyRelatedField(queryset=Budget.objects.all())
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = BudgetRaiseRequest
        fields = [
            "id",
            "budget",
            "period_start",
            "amount",
            "until",
            "reason",
            "status",
            "requested_by",
            "decided_by",
            "decided_at",
            "decision_note",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "period_start",
            "status",
            "requested_by",
            "decided_by",
            "decided_at",
            "decision_note",
            "created_at",
        ]
        extra_kwargs = {"amount": {"min_value": Decimal("0.0001")}}


class RaiseDecisionSerializer(KnownFieldsOnly, serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
