from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from core.models import AuditEntry
from core.serializers import AuditEntrySerializer
from tenants.models import Role
from tenants.permissions import IsPerson
from tenants.selectors import is_person, is_staff_member, tenant_for_request, tenants_for_user


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("object_type", str),
            OpenApiParameter("action", str),
        ]
    )
)
class AuditEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Who changed what: staff see their tenants' entries and provider-wide ones (prices, gateway
    tokens); a tenant's owners and admins see their tenant's."""

    query_parameters = ("object_type", "action")  # the list's filters besides tenant (core.filters)

    serializer_class = AuditEntrySerializer
    permission_classes = [IsPerson]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        user = self.request.user
        if not is_person(user):
            return AuditEntry.objects.none()
        if is_staff_member(user):
            visible = Q(tenant__in=tenants_for_user(user).values("pk")) | Q(tenant__isnull=True)
        else:
            visible = Q(tenant__memberships__user=user, tenant__memberships__role__in=[Role.OWNER, Role.ADMIN])
        entries = AuditEntry.objects.filter(visible).select_related("tenant")
        params = self.request.query_params
        if params.get("tenant"):
            entries = entries.filter(tenant=tenant_for_request(user=user, slug=params["tenant"]))
        if params.get("object_type"):
            entries = entries.filter(object_type=params["object_type"])
        if params.get("action"):
            entries = entries.filter(action=params["action"])
        return entries.order_by("-created_at", "-id")
