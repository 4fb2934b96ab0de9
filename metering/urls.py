from django.urls import path

from metering import views

urlpatterns = [
    path("t/<slug:tenant>/usage/", views.usage_explorer, name="usage"),
    path("t/<slug:tenant>/usage/events/", views.usage_events, name="usage-events"),
    path("staff/prices/", views.price_book, name="price-book"),
    path("staff/prices/import/", views.price_book_import, name="price-book-import"),
    path("staff/prices/unpriced/", views.unpriced_queue, name="unpriced"),
    path("staff/prices/unpriced/rerate/", views.unpriced_rerate, name="unpriced-rerate"),
]
