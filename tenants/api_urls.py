from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants import api

router = SimpleRouter(trailing_slash=False)
router.register("tenants", api.TenantViewSet, basename="tenant")
router.register("departments", api.DepartmentViewSet, basename="department")
router.register("projects", api.ProjectViewSet, basename="project")
router.register("members", api.MemberViewSet, basename="member")
router.register("api-keys", api.ApiKeyViewSet, basename="apikey")
router.register("gateway-tokens", api.GatewayTokenViewSet, basename="gatewaytoken")

urlpatterns = [
    path("auth/token", api.TokenView.as_view(), name="auth-token"),
    path("auth/me", api.MeView.as_view(), name="auth-me"),
    *router.urls,
]
