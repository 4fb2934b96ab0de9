from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.serializers import KnownFieldsOnly, TextSlugRelatedField
from tenants.models import ApiKey, Department, Environment, GatewayToken, Membership, Project, Role, Tenant
from tenants.validators import slug_validator, validate_country, validate_currency, validate_timezone

User = get_user_model()


def _django_validator(func):  # type: ignore[no-untyped-def]
    """Wrap a Django field validator for a DRF field (same messages)."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    def run(value):  # type: ignore[no-untyped-def]
        try:
            func(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    return run


class TenantSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    slug = serializers.CharField(max_length=40, validators=[_django_validator(slug_validator)])
    country = serializers.CharField(max_length=2, validators=[_django_validator(validate_country)])
    billing_currency = serializers.CharField(
        max_length=3, required=False, validators=[_django_validator(validate_currency)]
    )
    timezone = serializers.CharField(max_length=64, required=False, validators=[_django_validator(validate_timezone)])
    billing_emails = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)
    account_manager: serializers.SlugRelatedField[Any] = TextSlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "legal_name",
            "tax_id",
            "address",
            "country",
            "billing_currency",
            "timezone",
            "billing_emails",
            "status",
            "is_internal",
            "account_manager",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_slug(self, value: str) -> str:
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("A tenant's slug cannot change.")
        if self.instance is None and Tenant.objects.filter(slug=value).exists():
            raise serializers.ValidationError("A tenant with this slug already exists.")
        return value


# Fields a tenant's own owners and admins may edit; the rest are the account manager's.
TENANT_PROFILE_FIELDS = {"name", "legal_name", "tax_id", "address", "billing_emails"}


class DepartmentSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Department
        fields = ["id", "tenant", "name", "code", "created_at"]
        read_only_fields = ["id", "created_at"]


class DepartmentCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    tenant = serializers.CharField(required=False, max_length=40)
    name = serializers.CharField(max_length=200)
    code = serializers.CharField(max_length=64)


class ProjectSerializer(serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    department: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )

    class Meta:
        model = Project
        fields = ["id", "tenant", "department", "slug", "name", "environment", "is_internal", "created_at"]
        read_only_fields = fields


class ProjectWriteSerializer(KnownFieldsOnly, serializers.Serializer):
    tenant = serializers.CharField(required=False, max_length=40)
    slug = serializers.CharField(max_length=40, validators=[_django_validator(slug_validator)])
    name = serializers.CharField(max_length=200)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    department = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    is_internal = serializers.BooleanField(required=False)


class ProjectUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    echo_of = ProjectSerializer  # a project as read, sent back whole
    name = serializers.CharField(max_length=200, required=False)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    department = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    is_internal = serializers.BooleanField(required=False)


class MemberSerializer(serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    projects: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )

    class Meta:
        model = Membership
        fields = ["id", "tenant", "username", "email", "role", "projects", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    tenant = serializers.CharField(required=False, max_length=40)
    username = serializers.RegexField(r"^[\w.@+-]{1,150}\Z", max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    projects = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=500)


class MemberUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    echo_of = MemberSerializer  # a membership as read, sent back whole
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    projects = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=500)


class ApiKeySerializer(serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    state = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "tenant",
            "project",
            "name",
            "prefix",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    tenant = serializers.CharField(required=False, max_length=40)
    project = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full secret key. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class GatewayTokenSerializer(serializers.ModelSerializer):
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    state = serializers.CharField(read_only=True)

    class Meta:
        model = GatewayToken
        fields = [
            "id",
            "name",
            "prefix",
            "state",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = fields


class GatewayTokenCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class GatewayTokenCreatedSerializer(GatewayTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="The full secret token. Shown only in this response.")

    class Meta(GatewayTokenSerializer.Meta):
        fields = [*GatewayTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class TokenRequestSerializer(KnownFieldsOnly, serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    prefix = serializers.CharField()
    expires_at = serializers.DateTimeField()


class MeMembershipSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    staff_roles = serializers.ListField(child=serializers.CharField())
    memberships = MeMembershipSerializer(many=True)
