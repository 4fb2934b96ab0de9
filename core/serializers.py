from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from core.models import AuditEntry
from tenants.models import Tenant


class KnownFieldsOnly:
    """For write serializers: a body naming a field the serializer does not have is refused, each such field named
    (`"Unknown field."`, beside the errors of the known ones) — a misspelt `threshold` would otherwise be dropped
    without a word and the default used. Read-only fields a client echoes back from a read are known, and ignored
    as DRF ignores them."""

    fields: Any
    unknown_field_messages: dict[str, str] = {}  # a better word for some names than "Unknown field."
    echo_of: Any = None  # the read serializer of the resource, when writes have their own: its fields are known too

    def to_internal_value(self, data: Any) -> Any:
        known = set(self.fields) | (set(self.echo_of().fields) if self.echo_of is not None else set())
        unknown = sorted(set(data) - known) if isinstance(data, Mapping) else []
        refused = {name: [self.unknown_field_messages.get(name, UNKNOWN_FIELD)] for name in unknown[:20]}
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if refused and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **refused}) from None
            raise
        if refused:
            raise serializers.ValidationError(refused)
        return value


UNKNOWN_FIELD = "Unknown field."


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
