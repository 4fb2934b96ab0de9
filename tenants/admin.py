from typing import Any

from django.contrib import admin

from core.admin_mixins import AuditedAdmin
from tenants.models import ApiKey, Department, GatewayToken, Membership, PersonalToken, Project, Tenant

CREDENTIAL_READONLY = ["prefix", "secret_hash", "created_at", "last_used_at"]


class KeepsMeteredUsage:
    """What metered usage names is never deleted — its events, rollups and bills still name it (a tenant is
    suspended, a key revoked instead); the bulk delete, which asks nothing of each object, is not offered."""

    def names_usage(self, obj: Any) -> bool:
        raise NotImplementedError

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        if obj is not None and self.names_usage(obj):
            return False
        return super().has_delete_permission(request, obj)  # type: ignore[misc]

    def get_actions(self, request: Any) -> Any:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions


@admin.register(Tenant)
class TenantAdmin(KeepsMeteredUsage, AuditedAdmin):
    list_display = ["slug", "name", "country", "billing_currency", "status", "is_internal", "account_manager"]
    list_filter = ["status", "is_internal", "billing_currency", "country"]
    search_fields = ["slug", "name", "legal_name", "tax_id"]

    def get_readonly_fields(self, request: Any, obj: Tenant | None = None) -> Any:
        """The time zone is shown, not edited, once the tenant's usage is metered (tenants.services.tenant_update)."""
        from metering.selectors import tenant_has_usage

        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and tenant_has_usage(obj.pk):
            fields.append("timezone")
        return fields

    def names_usage(self, obj: Tenant) -> bool:
        from metering.selectors import tenant_has_usage

        return tenant_has_usage(obj.pk)


@admin.register(Department)
class DepartmentAdmin(AuditedAdmin):
    list_display = ["name", "code", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["name", "code"]


@admin.register(Project)
class ProjectAdmin(KeepsMeteredUsage, AuditedAdmin):
    list_display = ["slug", "name", "tenant", "environment", "department", "is_internal"]
    list_filter = ["environment", "is_internal", "tenant"]
    search_fields = ["slug", "name"]

    def names_usage(self, obj: Project) -> bool:
        from metering.selectors import usage_names

        return usage_names(tenant_id=obj.tenant_id, project_id=obj.pk)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    filter_horizontal = ["projects"]


@admin.register(ApiKey)
class ApiKeyAdmin(KeepsMeteredUsage, AuditedAdmin):
    """Keys are created in the portal or API, where the secret is shown once; admin can revoke."""

    list_display = ["prefix", "name", "tenant", "project", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    search_fields = ["prefix", "name"]
    readonly_fields = [*CREDENTIAL_READONLY, "tenant", "project", "created_by"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def names_usage(self, obj: ApiKey) -> bool:
        from metering.selectors import usage_names

        return usage_names(tenant_id=obj.tenant_id, api_key_id=obj.pk)


@admin.register(GatewayToken)
class GatewayTokenAdmin(AuditedAdmin):
    list_display = ["prefix", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = [*CREDENTIAL_READONLY, "created_by"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = [*CREDENTIAL_READONLY, "user"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
