from django.urls import path

from metering import api

urlpatterns = [
    path("events", api.EventsView.as_view(), name="events"),
    path("usage", api.UsageView.as_view(), name="usage"),
    path("usage/events", api.UsageEventsView.as_view(), name="usage-events"),
    path("usage/export", api.UsageExportView.as_view(), name="usage-export"),
]
