from typing import Any

from rest_framework import serializers

from billing.models import Contract, FxRate
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


class FxRateCreateSerializer(serializers.Serializer):
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


class VolumeTierSerializer(serializers.Serializer):
    from_amount = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=0)
    percent = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=0, max_value=100)


class RateOverrideSerializer(serializers.Serializer):
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


class ContractSerializer(serializers.ModelSerializer):
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
