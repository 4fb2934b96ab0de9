from django.urls import path

from metering import api

urlpatterns = [
    path("events", api.EventsView.as_view(), name="events"),
]
