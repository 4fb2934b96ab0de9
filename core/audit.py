"""The audit log: who changed what, when, with the values before and after."""

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.db import models

from core.models import AuditEntry
from core.request_id import current_request_id


def _json_safe(value: Any) -> Any:
    if isinstance(value, Decimal | dt.date | dt.datetime | dt.time | uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


# Never written to the log, whatever the model.
_SECRET_FIELDS = {"secret_hash", "password", "secret"}


def audit_snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """The audited fields of a row as JSON-safe values (foreign keys by id, many-to-many as id lists)."""
    snapshot: dict[str, Any] = {}
    opts = instance._meta
    for field in opts.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        if field.name in _SECRET_FIELDS or field.primary_key:
            continue
        snapshot[field.name] = _json_safe(field.value_from_object(instance))
    if instance.pk is not None:
        for m2m in opts.many_to_many:
            if fields is not None and m2m.name not in fields:
                continue
            snapshot[m2m.name] = sorted(getattr(instance, m2m.name).values_list("pk", flat=True))
    return snapshot


def actor_label(actor: Any) -> str:
    if actor is None:
        return "system"
    label = getattr(actor, "audit_label", None)
    if label:
        return str(label)
    return str(getattr(actor, "username", actor))


def audit_record(
    *,
    actor: Any,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    tenant: Any = None,
) -> AuditEntry | None:
    """Record a change. `before`/`after` are snapshots; only differing fields are kept.
    An update that changed nothing is not logged."""
    before = before or {}
    after = after or {}
    changes = {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
    if action == "update" and not changes:
        return None
    user = actor if getattr(actor, "_meta", None) is not None and getattr(actor, "pk", None) else None
    return AuditEntry.objects.create(
        actor=user,
        actor_label=actor_label(actor)[:200],
        tenant=tenant,
        action=action,
        object_type=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes,
        request_id=current_request_id(),
    )


def audited_update(*, actor: Any, instance: models.Model, changes: dict[str, Any], tenant: Any = None) -> None:
    """Apply field changes, validate, save, and log the before/after of what changed (caller holds the lock)."""
    before = audit_snapshot(instance)
    for field, value in changes.items():
        setattr(instance, field, value)
    instance.full_clean(validate_unique=False, validate_constraints=False)
    instance.save()
    audit_record(
        actor=actor, action="update", instance=instance, before=before, after=audit_snapshot(instance), tenant=tenant
    )
