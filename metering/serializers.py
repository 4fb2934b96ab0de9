from rest_framework import serializers

from metering.models import ModelPrice


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
