from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.validators import slug_validator, validate_country, validate_currency, validate_timezone


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MEMBER = "member", _("Member")
    DEVELOPER = "developer", _("Developer")


class Environment(models.TextChoices):
    PRODUCTION = "production", _("Production")
    STAGING = "staging", _("Staging")
    DEVELOPMENT = "development", _("Development")


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    legal_name = models.CharField(max_length=300, blank=True)
    tax_id = models.CharField(max_length=64, blank=True)
    address = models.TextField(blank=True)
    country = models.CharField(max_length=2, validators=[validate_country])
    billing_currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    billing_emails = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Internal and test tenants are metered and shown, never billed.
    is_internal = models.BooleanField(default=False)
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="managed_tenants"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Department(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="departments")
    name = models.CharField(max_length=200)
    code = models.CharField(max_length=64, help_text=_("Cost centre code used in chargeback reports."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="department_code_unique_in_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Project(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="projects")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="projects"
    )
    slug = models.CharField(max_length=40, validators=[slug_validator])
    name = models.CharField(max_length=200)
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.PRODUCTION)
    is_internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="project_slug_unique_in_tenant"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Only meaningful for developers: the projects they may see.
    projects = models.ManyToManyField(Project, blank=True, related_name="developer_memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    def can_manage(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    def sees_billing(self) -> bool:
        return self.role != Role.DEVELOPER


class Credential(models.Model):
    """A bearer credential: public prefix, hash of the secret, expiry and revocation."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        return not self.is_revoked() and not self.is_expired(now)

    @property
    def state(self) -> str:
        if self.is_revoked():
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class ApiKey(Credential):
    # Denormalised from the project so that every tenant-owned row carries tenant_id.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"


class GatewayToken(Credential):
    """Provider-wide machine credential of a gateway; names tenant and project in each call."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]


class PersonalToken(Credential):
    """A portal user's API token: acts with that user's roles."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    class Meta:
        ordering = ["-created_at"]
