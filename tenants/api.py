"""Administration API of SPEC §9 for tenants, departments, projects, members, keys and gateway tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, Conflict, error_body
from core.client_address import client_address
from tenants import services
from tenants.login_guard import login_failed, login_succeeded, login_wait_seconds
from tenants.models import ApiKey, Department, GatewayToken, Membership, PersonalToken, Project, Role, Tenant
from tenants.permissions import IsPerson, staff_only
from tenants.roles import ACCOUNT_MANAGERS, PLATFORM_ADMINS
from tenants.selectors import (
    api_keys_for_user,
    can_manage_tenant,
    departments_for_user,
    has_staff_role,
    manages_as_staff,
    members_for_user,
    membership_for,
    projects_for_user,
    staff_roles,
    tenant_for_request,
    tenants_for_user,
)
from tenants.serializers import (
    TENANT_PROFILE_FIELDS,
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    DepartmentCreateSerializer,
    DepartmentSerializer,
    GatewayTokenCreatedSerializer,
    GatewayTokenCreateSerializer,
    GatewayTokenSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    MeSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    ProjectWriteSerializer,
    TenantSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from tenants.services import RuleViolation

TENANT_FILTER = OpenApiParameter("tenant", str, description="Tenant slug; implied for a user of one tenant.")


def _rule(exc: RuleViolation) -> Conflict:
    return Conflict(str(exc), code=exc.code)


def _require_manage(user: Any, tenant: Tenant) -> None:
    if not can_manage_tenant(user, tenant):
        raise PermissionDenied("Only the tenant's owners and admins, or its account manager, may do this.")


def _filter_tenant(request: Request, queryset: QuerySet) -> QuerySet:
    slug = request.query_params.get("tenant")
    if slug:
        tenant = tenant_for_request(user=request.user, slug=slug)
        queryset = queryset.filter(tenant=tenant)
    return queryset


# --- Auth -----------------------------------------------------------------------------------------


class TokenView(APIView):
    """POST: exchange a username and password for a personal API token (mlt_…).
    DELETE: revoke the personal token the request is made with."""

    def get_permissions(self) -> list:
        if self.request.method == "POST":
            return [AllowAny()]
        return [IsPerson()]

    @extend_schema(request=TokenRequestSerializer, responses={201: TokenResponseSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        username = body.validated_data["username"]
        address = client_address(request.META)
        wait = login_wait_seconds(username=username, address=address)
        if wait:
            response = Response(error_body("rate_limited", "Too many failed logins. Try again later."), status=429)
            response["Retry-After"] = str(wait)
            return response
        user = authenticate(request._request, username=username, password=body.validated_data["password"])
        if user is None or not user.is_active:
            login_failed(username=username, address=address)
            raise ApiError(401, "invalid_credentials", "Wrong username or password.")
        login_succeeded(username=username, address=address)
        token, secret = services.personal_token_create(user=user)
        return Response(
            {"token": secret, "prefix": token.prefix, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, PersonalToken):
            raise ApiError(400, "not_a_token", "This request was not made with a personal token.")
        services.personal_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user: Any = request.user
        memberships = Membership.objects.filter(user=user).select_related("tenant")
        return Response(
            {
                "username": user.username,
                "email": user.email,
                "staff_roles": sorted(staff_roles(user)),
                "memberships": [{"tenant": m.tenant.slug, "role": m.role} for m in memberships],
            }
        )


# --- Tenants --------------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("status", str, enum=["active", "suspended"])]))
class TenantViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    query_parameters = ("status",)  # the list's filters besides tenant (core.filters)
    serializer_class = TenantSerializer
    permission_classes = [IsPerson]
    lookup_field = "slug"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Tenant]:
        tenants = tenants_for_user(self.request.user).select_related("account_manager")
        status_filter = self.request.query_params.get("status")
        if status_filter:
            tenants = tenants.filter(status=status_filter)
        return tenants.order_by("slug")

    def perform_create(self, serializer: Any) -> None:
        if not has_staff_role(self.request.user, ACCOUNT_MANAGERS):
            raise PermissionDenied("Only account managers create tenants.")
        data = dict(serializer.validated_data)
        serializer.instance = services.tenant_create(actor=self.request.user, **data)

    def perform_update(self, serializer: Any) -> None:
        tenant = serializer.instance
        assert tenant is not None
        changes = dict(serializer.validated_data)
        changes.pop("slug", None)
        if not manages_as_staff(self.request.user, tenant):
            if not can_manage_tenant(self.request.user, tenant):
                raise PermissionDenied("Only the tenant's owners and admins, or its account manager, may do this.")
            forbidden = sorted(set(changes) - TENANT_PROFILE_FIELDS)
            if forbidden:
                raise PermissionDenied("Only the account manager may change: " + ", ".join(forbidden) + ".")
        try:
            serializer.instance = services.tenant_update(actor=self.request.user, tenant=tenant, **changes)
        except RuleViolation as exc:
            fields = {"timezone": [str(exc)]} if exc.code == "timezone_fixed" else None
            raise Conflict(str(exc), code=exc.code, fields=fields) from None


# --- Departments ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[TENANT_FILTER]),
    create=extend_schema(request=DepartmentCreateSerializer, responses={201: DepartmentSerializer}),
)
class DepartmentViewSet(viewsets.ModelViewSet):
    query_parameters = ()  # the list's filters besides tenant (core.filters)
    serializer_class = DepartmentSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Department]:
        return _filter_tenant(self.request, departments_for_user(self.request.user)).order_by("name", "id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = DepartmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tenant = tenant_for_request(user=request.user, slug=data.get("tenant"))
        _require_manage(request.user, tenant)
        if Department.objects.filter(tenant=tenant, code=data["code"]).exists():
            raise ValidationError({"code": ["A department with this code already exists."]})
        department = services.department_create(actor=request.user, tenant=tenant, name=data["name"], code=data["code"])
        return Response(DepartmentSerializer(department).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: Any) -> None:
        department = serializer.instance
        assert department is not None
        _require_manage(self.request.user, department.tenant)
        code = serializer.validated_data.get("code")
        if code and Department.objects.filter(tenant=department.tenant, code=code).exclude(pk=department.pk).exists():
            raise ValidationError({"code": ["A department with this code already exists."]})
        serializer.instance = services.department_update(
            actor=self.request.user, department=department, **serializer.validated_data
        )

    def perform_destroy(self, instance: Department) -> None:
        _require_manage(self.request.user, instance.tenant)
        services.department_delete(actor=self.request.user, department=instance)


# --- Projects -------------------------------------------------------------------------------------


def _department_for(tenant: Tenant, department_id: int | None) -> Department | None:
    if department_id is None:
        return None
    department = Department.objects.filter(tenant=tenant, pk=department_id).first()
    if department is None:
        raise ValidationError({"department": ["No such department in this tenant."]})
    return department


@extend_schema_view(
    list=extend_schema(
        parameters=[TENANT_FILTER, OpenApiParameter("environment", str), OpenApiParameter("department", int)]
    ),
    create=extend_schema(request=ProjectWriteSerializer, responses={201: ProjectSerializer}),
    partial_update=extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer),
)
class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    query_parameters = ("department", "environment")  # the list's filters besides tenant (core.filters)
    serializer_class = ProjectSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        projects = _filter_tenant(self.request, projects_for_user(self.request.user))
        params = self.request.query_params
        if params.get("environment"):
            projects = projects.filter(environment=params["environment"])
        if params.get("department"):
            if not params["department"].isdigit():
                raise ValidationError({"department": ["A department id is a whole number."]})
            projects = projects.filter(department_id=int(params["department"]))
        return projects.order_by("name", "id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ProjectWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        tenant = tenant_for_request(user=request.user, slug=data.pop("tenant", None))
        _require_manage(request.user, tenant)
        if Project.objects.filter(tenant=tenant, slug=data["slug"]).exists():
            raise ValidationError({"slug": ["A project with this slug already exists in this tenant."]})
        data["department"] = _department_for(tenant, data.get("department"))
        project = services.project_create(actor=request.user, tenant=tenant, **data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        _require_manage(request.user, project.tenant)
        body = ProjectUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if "department" in changes:
            changes["department"] = _department_for(project.tenant, changes["department"])
        project = services.project_update(actor=request.user, project=project, **changes)
        return Response(ProjectSerializer(project).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)


# --- Members --------------------------------------------------------------------------------------


def _projects_by_slug(tenant: Tenant, slugs: list[str] | None) -> list[Project] | None:
    if slugs is None:
        return None
    projects = list(Project.objects.filter(tenant=tenant, slug__in=slugs))
    missing = sorted(set(slugs) - {p.slug for p in projects})
    if missing:
        raise ValidationError({"projects": [f"No such project in this tenant: {', '.join(missing)}."]})
    return projects


def _may_touch_owner(user: Any, tenant: Tenant) -> bool:
    if manages_as_staff(user, tenant):
        return True
    membership = membership_for(user=user, tenant=tenant)
    return membership is not None and membership.role == Role.OWNER


@extend_schema_view(
    list=extend_schema(parameters=[TENANT_FILTER]),
    create=extend_schema(request=MemberCreateSerializer, responses={201: MemberSerializer}),
    partial_update=extend_schema(request=MemberUpdateSerializer, responses=MemberSerializer),
)
class MemberViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    query_parameters = ()  # the list's filters besides tenant (core.filters)
    serializer_class = MemberSerializer
    permission_classes = [IsPerson]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Membership]:
        return _filter_tenant(self.request, members_for_user(self.request.user)).order_by("user__username", "id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = MemberCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tenant = tenant_for_request(user=request.user, slug=data.get("tenant"))
        _require_manage(request.user, tenant)
        if data["role"] == Role.OWNER and not _may_touch_owner(request.user, tenant):
            raise PermissionDenied("Only an owner may add another owner.")
        projects = _projects_by_slug(tenant, data.get("projects"))
        try:
            membership = services.member_add(
                actor=request.user,
                tenant=tenant,
                username=data["username"],
                email=data.get("email", ""),
                role=data["role"],
                projects=projects,
            )
        except RuleViolation as exc:
            raise _rule(exc) from None
        except IntegrityError:
            raise Conflict("This user was added at the same moment by another request.") from None
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        _require_manage(request.user, membership.tenant)
        body = MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        touches_owner = membership.role == Role.OWNER or data.get("role") == Role.OWNER
        if touches_owner and not _may_touch_owner(request.user, membership.tenant):
            raise PermissionDenied("Only an owner may grant or change the owner role.")
        try:
            membership = services.member_update(
                actor=request.user,
                membership=membership,
                role=data.get("role"),
                projects=_projects_by_slug(membership.tenant, data.get("projects")),
            )
        except RuleViolation as exc:
            raise _rule(exc) from None
        return Response(MemberSerializer(membership).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    def perform_destroy(self, instance: Membership) -> None:
        _require_manage(self.request.user, instance.tenant)
        if instance.role == Role.OWNER and not _may_touch_owner(self.request.user, instance.tenant):
            raise PermissionDenied("Only an owner may remove an owner.")
        try:
            services.member_remove(actor=self.request.user, membership=instance)
        except RuleViolation as exc:
            raise _rule(exc) from None


# --- API keys -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        parameters=[
            TENANT_FILTER,
            OpenApiParameter("project", str),
            OpenApiParameter("state", str, enum=["active", "revoked", "expired"]),
        ]
    ),
    create=extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer}),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    query_parameters = ("project", "state")  # the list's filters besides tenant (core.filters)
    serializer_class = ApiKeySerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> QuerySet[ApiKey]:
        keys = _filter_tenant(self.request, api_keys_for_user(self.request.user))
        params = self.request.query_params
        if params.get("project"):
            keys = keys.filter(project__slug=params["project"])
        state = params.get("state")
        if state == "revoked":
            keys = keys.filter(revoked_at__isnull=False)
        elif state == "active":
            from django.db.models import Q
            from django.utils import timezone

            keys = keys.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
            )
        return keys.order_by("-created_at", "-id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tenant = tenant_for_request(user=request.user, slug=data.get("tenant"))
        project = projects_for_user(request.user, tenant).filter(slug=data["project"]).first()
        if project is None:
            raise Http404("No such project.")
        _require_manage(request.user, tenant)
        api_key, secret = services.api_key_create(
            actor=request.user, project=project, name=data["name"], expires_at=data.get("expires_at")
        )
        payload = ApiKeySerializer(api_key).data | {"key": secret}
        response = Response(payload, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        api_key = self.get_object()
        _require_manage(request.user, api_key.tenant)
        api_key = services.api_key_revoke(actor=request.user, api_key=api_key)
        return Response(ApiKeySerializer(api_key).data)


# --- Gateway tokens -------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(request=GatewayTokenCreateSerializer, responses={201: GatewayTokenCreatedSerializer})
)
class GatewayTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    query_parameters = ()  # the list's filters besides tenant (core.filters)
    serializer_class = GatewayTokenSerializer
    permission_classes = [IsPerson, staff_only(PLATFORM_ADMINS)]
    queryset = GatewayToken.objects.select_related("created_by").order_by("-created_at", "-id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = GatewayTokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, secret = services.gateway_token_create(actor=request.user, **body.validated_data)
        response = Response(GatewayTokenSerializer(token).data | {"key": secret}, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses=GatewayTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = services.gateway_token_revoke(actor=request.user, token=self.get_object())
        return Response(GatewayTokenSerializer(token).data)
