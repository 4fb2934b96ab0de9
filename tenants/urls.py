from django.urls import path

from tenants import views

urlpatterns = [
    path("", views.home, name="home"),
    path("staff/tenants/", views.staff_tenants, name="staff-tenants"),
    path("staff/gateway-tokens/", views.gateway_tokens, name="gateway-tokens"),
    path("t/<slug:tenant>/", views.tenant_overview, name="tenant"),
    path("t/<slug:tenant>/status/", views.tenant_status, name="tenant-status"),
    path("t/<slug:tenant>/members/", views.members, name="members"),
    path("t/<slug:tenant>/members/<int:pk>/", views.member_change, name="member-change"),
    path("t/<slug:tenant>/projects/", views.projects, name="projects"),
    path("t/<slug:tenant>/projects/<slug:project>/", views.project_detail, name="project"),
    path("t/<slug:tenant>/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api-key-revoke"),
]
