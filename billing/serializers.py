from rest_framework import serializers

from billing.models import FxRate
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
