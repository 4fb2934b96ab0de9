from django.urls import path

from metering import views

urlpatterns = [
    path("t/<slug:tenant>/usage/", views.usage_explorer, name="usage"),
    path("t/<slug:tenant>/usage/events/", views.usage_events, name="usage-events"),
    path("t/<slug:tenant>/insights/", views.insights, name="insights"),
    path("t/<slug:tenant>/usage/exports/", views.usage_exports, name="usage-exports"),
    path("t/<slug:tenant>/usage/exports/<int:pk>/", views.usage_export, name="usage-export"),
    path("t/<slug:tenant>/usage/exports/<int:pk>/download/", views.usage_export_download, name="usage-export-download"),
    path("staff/reconciliation/", views.reconciliation, name="reconciliation"),
    path("staff/reconciliation/<int:pk>/", views.reconciliation_report, name="reconciliation-report"),
    path("staff/prices/", views.price_book, name="price-book"),
    path("staff/prices/new/", views.price_new, name="price-new"),
    path("staff/prices/<int:pk>/aliases/", views.price_aliases, name="price-aliases"),
    path("staff/prices/import/", views.price_book_import, name="price-book-import"),
    path("staff/prices/unpriced/", views.unpriced_queue, name="unpriced"),
    path("staff/prices/unpriced/rerate/", views.unpriced_rerate, name="unpriced-rerate"),
]
