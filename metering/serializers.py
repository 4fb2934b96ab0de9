from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.serializers import KnownFieldsOnly
from metering.models import Anomaly, ModelPrice, price_aliases


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    corrected = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    estimated = serializers.IntegerField()
    unpriced = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField())


class SingleIngestResultSerializer(IngestResultSerializer):
    event_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["accepted", "duplicate", "corrected"])


class EventBatchSerializer(serializers.Serializer):
    """Documentation of the body: one canonical event (SPEC §5.1), or {"events": [...]} with ≤ 1,000."""

    events = serializers.ListField(child=serializers.DictField(), max_length=1000, required=False)


class ModelPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelPrice
        fields = [
            "id",
            "provider",
            "model",
            "aliases",
            "effective_from",
            "effective_to",
            "currency",
            "input",
            "cached_input",
            "cache_write",
            "output",
            "reasoning",
            "per_request",
            "source",
            "created_at",
        ]
        read_only_fields = ["id", "source", "created_at"]


class UsageTotalsSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    requests = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=28, decimal_places=10, coerce_to_string=True)


class UsageRowSerializer(UsageTotalsSerializer):
    day = serializers.DateField(required=False)
    model = serializers.CharField(required=False, allow_null=True)
    project = serializers.CharField(required=False, allow_null=True)
    feature = serializers.CharField(required=False, allow_null=True)
    end_user = serializers.CharField(required=False, allow_null=True)
    api_key = serializers.CharField(required=False, allow_null=True)
    department = serializers.CharField(required=False, allow_null=True)
    environment = serializers.CharField(required=False, allow_null=True)


class UsageResponseSerializer(serializers.Serializer):
    currency = serializers.CharField()
    rows = UsageRowSerializer(many=True)
    totals = UsageTotalsSerializer()


class UsageEventSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug")
    api_key = serializers.CharField(source="api_key.prefix", allow_null=True, default=None)
    timestamp = serializers.DateTimeField(source="occurred_at")

    class Meta:
        from metering.models import UsageEvent

        model = UsageEvent
        fields = [
            "event_id",
            "timestamp",
            "received_at",
            "project",
            "api_key",
            "provider",
            "model",
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "feature",
            "end_user",
            "session_id",
            "prompt_template",
            "environment",
            "latency_ms",
            "status",
            "cost",
            "rating_status",
            "estimated",
            "estimate_method",
            "billable",
            "raw_usage",
            "metadata",
        ]
        read_only_fields = fields


# What a stored row shows but a new row does not take, and why (an exported row sent back names them).
PRICE_SET_BY_THE_BOOK = {
    "effective_to": "Set by the book: a price is in force until the model's next price starts.",
    "source": "Set by the book: manual here, import for a CSV file, genai-prices for the snapshot.",
    "id": "Set by the book.",
    "created_at": "Set by the book.",
}


def aliases_checked(value: list[str]) -> None:
    """The book's rule for aliases (metering.models.price_aliases), as an API error."""
    try:
        price_aliases(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class ModelPriceCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    """A new effective-dated row (POST /api/v1/prices, a line of a CSV import). A field it does not take is an
    error, never dropped: a price sent in another currency or with its own end must not be stored as something
    else."""

    provider = serializers.CharField(max_length=100)
    model = serializers.CharField(max_length=200)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50, validators=[aliases_checked]
    )
    effective_from = serializers.DateTimeField()
    input = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0)
    output = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0)
    cached_input = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True
    )
    cache_write = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True
    )
    reasoning = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True)
    per_request = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=0, required=False, allow_null=True
    )
    currency = serializers.ChoiceField(
        choices=["USD"],
        required=False,
        error_messages={"invalid_choice": "The price book is in USD: convert the price to USD first."},
    )

    unknown_field_messages = PRICE_SET_BY_THE_BOOK


class ModelPriceAliasesSerializer(KnownFieldsOnly, serializers.Serializer):
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50, validators=[aliases_checked]
    )


class UnpricedModelSerializer(serializers.Serializer):
    model = serializers.CharField()
    provider = serializers.CharField()
    events = serializers.IntegerField()
    tenants = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class AnomalySerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True)

    class Meta:
        model = Anomaly
        fields = [
            "id",
            "tenant",
            "kind",
            "scope",
            "window_start",
            "window_end",
            "observed",
            "expected",
            "ratio",
            "unit",
            "details",
            "status",
            "detected_at",
        ]
        read_only_fields = fields
