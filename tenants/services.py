"""Writes about tenants, people and credentials. Each is one transaction and is audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record, audit_snapshot, audited_update
from core.hotcache import hot_changed
from tenants.credential_cache import credentials_forget, credentials_forget_for
from tenants.credentials import (
    KIND_GATEWAY_TOKEN,
    KIND_PERSONAL_TOKEN,
    KIND_PROJECT_KEY,
    credential_generate,
)
from tenants.models import ApiKey, Department, GatewayToken, Membership, PersonalToken, Project, Role, Tenant
from tenants.roles import ACCOUNT_MANAGERS
from tenants.selectors import has_staff_role

User = get_user_model()


TIMEZONE_FIXED = (
    "The time zone cannot change once usage is metered: the tenant's days, budget periods and billing months "
    "were counted in it."
)


class RuleViolation(Exception):
    """A request that is well-formed but breaks a business rule (answered 409)."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


def _revoke_audited(*, actor: Any, credential: Any, tenant: Tenant | None) -> None:
    """Idempotent: revoking a revoked credential keeps the first revocation time. Caller holds the row lock."""
    credentials_forget(credential.prefix)
    if credential.revoked_at is not None:
        return
    before = audit_snapshot(credential)
    credential.revoked_at = timezone.now()
    credential.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="revoke",
        instance=credential,
        before=before,
        after=audit_snapshot(credential),
        tenant=tenant,
    )


# --- Tenants ----------------------------------------------------------------------------------


@transaction.atomic
def tenant_create(*, actor: Any, slug: str, name: str, country: str, **fields: Any) -> Tenant:
    """An account manager who creates a tenant manages it unless another manager is named."""
    if fields.get("account_manager") is None and has_staff_role(actor, ACCOUNT_MANAGERS):
        fields["account_manager"] = actor
    tenant = Tenant(slug=slug, name=name, country=country, **fields)
    tenant.full_clean()
    tenant.save()
    audit_record(actor=actor, action="create", instance=tenant, after=audit_snapshot(tenant), tenant=tenant)
    return tenant


@transaction.atomic
def tenant_update(*, actor: Any, tenant: Tenant, **changes: Any) -> Tenant:
    """The time zone is the tenant's calendar — the days of its usage, its budget periods, its billing months — and
    stays as it is once usage is metered: the stored days, budgets and bills were all counted by it."""
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if changes.get("timezone", tenant.timezone) != tenant.timezone:
        from metering.selectors import tenant_has_usage

        if tenant_has_usage(tenant.pk):
            raise RuleViolation(TIMEZONE_FIXED, code="timezone_fixed")
    audited_update(actor=actor, instance=tenant, changes=changes, tenant=tenant)
    credentials_forget_for(tenant_id=tenant.pk)
    return tenant


# --- Departments and projects -----------------------------------------------------------------


@transaction.atomic
def department_create(*, actor: Any, tenant: Tenant, name: str, code: str) -> Department:
    department = Department.objects.create(tenant=tenant, name=name, code=code)
    audit_record(actor=actor, action="create", instance=department, after=audit_snapshot(department), tenant=tenant)
    return department


@transaction.atomic
def department_update(*, actor: Any, department: Department, **changes: Any) -> Department:
    audited_update(actor=actor, instance=department, changes=changes, tenant=department.tenant)
    return department


@transaction.atomic
def department_delete(*, actor: Any, department: Department) -> None:
    before = audit_snapshot(department)
    audit_record(actor=actor, action="delete", instance=department, before=before, tenant=department.tenant)
    department.delete()
    hot_changed()  # its projects no longer belong to it


@transaction.atomic
def project_create(
    *,
    actor: Any,
    tenant: Tenant,
    slug: str,
    name: str,
    environment: str = "production",
    department: Department | None = None,
    is_internal: bool = False,
) -> Project:
    project = Project.objects.create(
        tenant=tenant,
        slug=slug,
        name=name,
        environment=environment,
        department=department,
        is_internal=is_internal,
    )
    audit_record(actor=actor, action="create", instance=project, after=audit_snapshot(project), tenant=tenant)
    hot_changed()  # budget indexes map projects to departments
    return project


@transaction.atomic
def project_update(*, actor: Any, project: Project, **changes: Any) -> Project:
    audited_update(actor=actor, instance=project, changes=changes, tenant=project.tenant)
    credentials_forget_for(project_id=project.pk)
    return project


# --- Members ----------------------------------------------------------------------------------


def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).count()


@transaction.atomic
def member_add(
    *,
    actor: Any,
    tenant: Tenant,
    username: str,
    email: str = "",
    role: str = Role.MEMBER,
    projects: list[Project] | None = None,
) -> Membership:
    """Adds an existing user, or creates one with no password and emails a link to set it."""
    user = User.objects.filter(username=username).first()
    created_user = user is None
    if user is None:
        user = User.objects.create_user(username=username, email=email)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if Membership.objects.filter(user=user, tenant=tenant).exists():
        raise RuleViolation(f"{username} is already a member of {tenant.slug}.", code="already_member")
    membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    if role == Role.DEVELOPER and projects:
        membership.projects.set(projects)
    audit_record(actor=actor, action="create", instance=membership, after=audit_snapshot(membership), tenant=tenant)
    if created_user and user.email:
        from tenants.tasks import member_invite_send

        membership_id = membership.pk
        transaction.on_commit(lambda: member_invite_send.delay(membership_id))
    return membership


@transaction.atomic
def member_update(
    *, actor: Any, membership: Membership, role: str | None = None, projects: list[Project] | None = None
) -> Membership:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    before = audit_snapshot(membership)
    if role is not None and role != membership.role:
        if membership.role == Role.OWNER and _owner_count(membership.tenant) <= 1:
            raise RuleViolation("A tenant keeps at least one owner.", code="last_owner")
        membership.role = role
        membership.save(update_fields=["role"])
    if membership.role != Role.DEVELOPER:
        membership.projects.clear()
    elif projects is not None:
        membership.projects.set(projects)
    audit_record(
        actor=actor,
        action="update",
        instance=membership,
        before=before,
        after=audit_snapshot(membership),
        tenant=membership.tenant,
    )
    return membership


@transaction.atomic
def member_remove(*, actor: Any, membership: Membership) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and _owner_count(membership.tenant) <= 1:
        raise RuleViolation("A tenant keeps at least one owner.", code="last_owner")
    audit_record(
        actor=actor, action="delete", instance=membership, before=audit_snapshot(membership), tenant=membership.tenant
    )
    membership.delete()


# --- Credentials ------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(
    *, actor: Any, project: Project, name: str, expires_at: dt.datetime | None = None
) -> tuple[ApiKey, str]:
    """A new project key and its full secret, which is never stored and shown only this once."""
    prefix, secret_hash, full_key = credential_generate(KIND_PROJECT_KEY)
    api_key = ApiKey.objects.create(
        tenant=project.tenant,
        project=project,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        expires_at=expires_at,
        created_by=actor if isinstance(actor, User) else None,
    )
    audit_record(actor=actor, action="create", instance=api_key, after=audit_snapshot(api_key), tenant=project.tenant)
    return api_key, full_key


@transaction.atomic
def api_key_revoke(*, actor: Any, api_key: ApiKey) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    _revoke_audited(actor=actor, credential=api_key, tenant=api_key.tenant)
    return api_key


@transaction.atomic
def gateway_token_create(*, actor: Any, name: str, expires_at: dt.datetime | None = None) -> tuple[GatewayToken, str]:
    prefix, secret_hash, full_token = credential_generate(KIND_GATEWAY_TOKEN)
    token = GatewayToken.objects.create(
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        expires_at=expires_at,
        created_by=actor if isinstance(actor, User) else None,
    )
    audit_record(actor=actor, action="create", instance=token, after=audit_snapshot(token))
    return token, full_token


@transaction.atomic
def gateway_token_revoke(*, actor: Any, token: GatewayToken) -> GatewayToken:
    token = GatewayToken.objects.select_for_update().get(pk=token.pk)
    _revoke_audited(actor=actor, credential=token, tenant=None)
    return token


@transaction.atomic
def personal_token_create(*, user: Any, name: str = "api") -> tuple[PersonalToken, str]:
    prefix, secret_hash, full_token = credential_generate(KIND_PERSONAL_TOKEN)
    lifetime = dt.timedelta(days=settings.METERLINE_PERSONAL_TOKEN_DAYS)
    token = PersonalToken.objects.create(
        user=user, name=name, prefix=prefix, secret_hash=secret_hash, expires_at=timezone.now() + lifetime
    )
    return token, full_token


def personal_token_revoke(*, token: PersonalToken) -> None:
    PersonalToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
