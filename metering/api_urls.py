from django.urls import URLPattern, path
from rest_framework.routers import SimpleRouter

from metering import api

router = SimpleRouter(trailing_slash=False)
router.register("prices", api.PriceViewSet, basename="price")
router.register("anomalies", api.AnomalyViewSet, basename="anomaly")
router.register("provider-statements", api.ProviderStatementViewSet, basename="providerstatement")

# Resolved ahead of every other API path (config/urls.py): the calls made before or after every LLM call.
hot_urlpatterns: list[URLPattern] = [path("events", api.EventsView.as_view(), name="events")]

urlpatterns = [
    path("integrations/litellm", api.LiteLLMView.as_view(), name="integrations-litellm"),
    path("usage", api.UsageView.as_view(), name="usage"),
    path("usage/events", api.UsageEventsView.as_view(), name="usage-events"),
    path("usage/export", api.UsageExportView.as_view(), name="usage-export"),
    path("insights", api.InsightsView.as_view(), name="insights"),
    path("usage/exports", api.UsageExportJobsView.as_view(), name="usage-exports"),
    path("usage/exports/<int:pk>", api.UsageExportJobView.as_view(), name="usage-export-job"),
    path("usage/exports/<int:pk>/download", api.UsageExportDownloadView.as_view(), name="usage-export-download"),
    *router.urls,
]
