from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from core.audit import audit_record, audit_snapshot


class AuditedAdmin(admin.ModelAdmin):
    """Changes made through Django admin land in the audit log like any other."""

    def _tenant_of(self, obj: models.Model) -> Any:
        return getattr(obj, "tenant", None) if obj._meta.model_name != "tenant" else obj

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = audit_snapshot(type(obj).objects.get(pk=obj.pk)) if change and obj.pk else {}
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            action="update" if change else "create",
            instance=obj,
            before=before,
            after=audit_snapshot(obj),
            tenant=self._tenant_of(obj),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_record(
            actor=request.user, action="delete", instance=obj, before=audit_snapshot(obj), tenant=self._tenant_of(obj)
        )
        super().delete_model(request, obj)
