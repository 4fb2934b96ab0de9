from __future__ import annotations

from rest_framework import serializers

from core.models import AuditEntry
from tenants.models import Tenant


class TextSlugRelatedField(serializers.SlugRelatedField):
    """A writable SlugRelatedField that looks a value up only when PostgreSQL text can hold it: a NUL character
    names no row (it would fail the query rather than find nothing)."""

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", "\\0"))
        return super().to_internal_value(data)


class AuditEntrySerializer(serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Tenant] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "actor",
            "tenant",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "changes",
            "request_id",
        ]
        read_only_fields = fields
