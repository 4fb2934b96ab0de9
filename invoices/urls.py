from django.urls import path

from invoices import views

urlpatterns = [
    path("t/<slug:tenant>/invoices/", views.invoices, name="invoices"),
    path("t/<slug:tenant>/invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("t/<slug:tenant>/invoices/<int:pk>/action/", views.invoice_action, name="invoice-action"),
    path("t/<slug:tenant>/invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice-pdf"),
    path("t/<slug:tenant>/credit-notes/<int:pk>/pdf/", views.credit_note_pdf, name="credit-note-pdf"),
    path("staff/invoices/", views.finance_invoices, name="finance-invoices"),
    path("staff/invoices/export/", views.finance_export, name="finance-export"),
]
