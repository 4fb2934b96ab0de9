"""Every tenant-owned read goes through these: what a user may see, or 404."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from tenants.models import ApiKey, Department, Membership, Project, Role, Tenant
from tenants.roles import ACCOUNT_MANAGERS, FINANCE, PLATFORM_ADMINS, STAFF_GROUPS


def is_person(user: Any) -> bool:
    """A logged-in portal user (not a machine credential, not anonymous)."""
    return bool(getattr(user, "is_authenticated", False)) and getattr(user, "_meta", None) is not None


def staff_roles(user: Any) -> frozenset[str]:
    if not is_person(user) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_meterline_staff_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset(STAFF_GROUPS)
        else:
            cached = frozenset(user.groups.filter(name__in=STAFF_GROUPS).values_list("name", flat=True))
        user._meterline_staff_roles = cached
    return cached


def has_staff_role(user: Any, *roles: str) -> bool:
    return bool(staff_roles(user) & set(roles))


def is_staff_member(user: Any) -> bool:
    return bool(staff_roles(user))


def sees_all_tenants(user: Any) -> bool:
    return has_staff_role(user, PLATFORM_ADMINS, FINANCE)


def tenants_for_user(user: Any) -> QuerySet[Tenant]:
    if not is_person(user) or not user.is_active:
        return Tenant.objects.none()
    if sees_all_tenants(user):
        return Tenant.objects.all()
    visible = Q(memberships__user=user)
    if has_staff_role(user, ACCOUNT_MANAGERS):
        visible |= Q(account_manager=user)
    return Tenant.objects.filter(visible).distinct()


def _nameable(slug: Any) -> bool:
    """Whether `slug` could name a row: text PostgreSQL can hold (a body's string may carry a NUL)."""
    return isinstance(slug, str) and "\x00" not in slug


def tenant_get_for_user(*, user: Any, slug: str) -> Tenant:
    tenant = tenants_for_user(user).filter(slug=slug).first() if _nameable(slug) else None
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def membership_for(*, user: Any, tenant: Tenant) -> Membership | None:
    if not is_person(user):
        return None
    cache = user.__dict__.setdefault("_meterline_memberships", {})
    if tenant.pk not in cache:
        cache[tenant.pk] = Membership.objects.filter(user=user, tenant=tenant).first()
    return cache[tenant.pk]


def manages_as_staff(user: Any, tenant: Tenant) -> bool:
    """Provider staff who may change a tenant's set-up: its account manager, or a superuser."""
    if not is_person(user):
        return False
    return user.is_superuser or (has_staff_role(user, ACCOUNT_MANAGERS) and tenant.account_manager_id == user.pk)


def can_manage_tenant(user: Any, tenant: Tenant) -> bool:
    """Owners and admins of the tenant, its account manager, superusers."""
    if manages_as_staff(user, tenant):
        return True
    membership = membership_for(user=user, tenant=tenant)
    return membership is not None and membership.can_manage()


def can_see_billing(user: Any, tenant: Tenant) -> bool:
    """Bills and invoices are for owners, admins, members and staff who see the tenant — never developers."""
    if is_staff_member(user) and tenants_for_user(user).filter(pk=tenant.pk).exists():
        return True
    membership = membership_for(user=user, tenant=tenant)
    return membership is not None and membership.sees_billing()


def _developer_scope(user: Any) -> tuple[Q, Q]:
    """(tenants where the user sees every project, tenants where the user is a developer)."""
    if sees_all_tenants(user):
        return Q(), Q(pk__in=[])
    full = Q(memberships__user=user, memberships__role__in=[Role.OWNER, Role.ADMIN, Role.MEMBER])
    if has_staff_role(user, ACCOUNT_MANAGERS):
        full |= Q(account_manager=user)
    return full, Q(memberships__user=user, memberships__role=Role.DEVELOPER)


def full_access_tenant_ids(user: Any) -> QuerySet[Tenant]:
    """Tenants in which the user sees all projects (non-developer members and staff)."""
    if not is_person(user) or not user.is_active:
        return Tenant.objects.none()
    full, _dev = _developer_scope(user)
    return Tenant.objects.filter(full).values("pk")  # type: ignore[return-value]


def projects_for_user(user: Any, tenant: Tenant | None = None) -> QuerySet[Project]:
    if not is_person(user) or not user.is_active:
        return Project.objects.none()
    visible = Q(tenant__in=full_access_tenant_ids(user)) | Q(
        developer_memberships__user=user, developer_memberships__role=Role.DEVELOPER
    )
    projects = Project.objects.filter(visible).distinct()
    if tenant is not None:
        projects = projects.filter(tenant=tenant)
    return projects.select_related("tenant", "department")


def project_get_for_user(*, user: Any, tenant: Tenant, slug: str) -> Project:
    project = projects_for_user(user, tenant).filter(slug=slug).first() if _nameable(slug) else None
    if project is None:
        raise Http404("No such project.")
    return project


def departments_for_user(user: Any, tenant: Tenant | None = None) -> QuerySet[Department]:
    departments = Department.objects.filter(tenant__in=tenants_for_user(user).values("pk"))
    if tenant is not None:
        departments = departments.filter(tenant=tenant)
    return departments.select_related("tenant")


def api_keys_for_user(user: Any, tenant: Tenant | None = None) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(project__in=projects_for_user(user, tenant).values("pk"))
    return keys.select_related("tenant", "project", "created_by")


def members_for_user(user: Any, tenant: Tenant | None = None) -> QuerySet[Membership]:
    """Developers see no member list; everyone else who sees the tenant does."""
    memberships = Membership.objects.filter(tenant__in=full_access_tenant_ids(user))
    if tenant is not None:
        memberships = memberships.filter(tenant=tenant)
    return memberships.select_related("user", "tenant").prefetch_related("projects")


def tenant_for_request(*, user: Any, slug: str | None) -> Tenant:
    """The tenant a request names, or the only one the user belongs to. 404 when not visible."""
    if slug:
        return tenant_get_for_user(user=user, slug=slug)
    visible = list(tenants_for_user(user)[:2])
    if len(visible) == 1:
        return visible[0]
    from rest_framework.exceptions import ValidationError

    raise ValidationError({"tenant": ["Name the tenant by its slug."]})
