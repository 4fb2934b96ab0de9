from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing import api_urls as billing_api_urls
from config.env import env_bool
from metering import api_urls as metering_api_urls
from tenants.views import MeterlineLoginView

api_v1: list[URLPattern | URLResolver] = [
    *billing_api_urls.hot_urlpatterns,
    *metering_api_urls.hot_urlpatterns,
    path("", include("tenants.api_urls")),
    path("", include("core.api_urls")),
    path("", include("metering.api_urls")),
    path("", include("billing.api_urls")),
    path("", include("invoices.api_urls")),
]

# Errors raised before any view (a refused Host header, say): §11 JSON under /api/, HTML pages elsewhere.
handler400 = "core.error_views.bad_request"
handler403 = "core.error_views.permission_denied"
handler404 = "core.error_views.page_not_found"
handler500 = "core.error_views.server_error"

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("accounts/login/", MeterlineLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/accounts/reset/done/"),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("", include(("config.portal_urls", "portal"), namespace="portal")),
]

if env_bool("METERLINE_BENCH_VIEWS", default=False):
    from core.bench_views import bare_json, bare_json_redis

    # Under /api/ like the endpoints they are measured against, for the same middleware work on the way, and
    # resolved first, as the hot endpoints are: the baseline pays no URL matching the endpoints do not.
    urlpatterns[:0] = [
        path("api/bench/bare", bare_json, name="bench-bare"),
        path("api/bench/bare-redis", bare_json_redis, name="bench-bare-redis"),
    ]
