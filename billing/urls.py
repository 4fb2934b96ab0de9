from django.urls import path

from billing import views

urlpatterns = [
    path("t/<slug:tenant>/bills/", views.bills, name="bills"),
    path("t/<slug:tenant>/bills/<int:pk>/", views.bill_detail, name="bill"),
    path("t/<slug:tenant>/contracts/", views.contracts, name="contracts"),
    path("t/<slug:tenant>/contracts/<int:pk>/", views.contract_detail, name="contract"),
    path("staff/bills/", views.finance_bills, name="finance-bills"),
    path("staff/bills/close/", views.finance_bills_close, name="finance-bills-close"),
    path("staff/fx-rates/", views.fx_rates, name="fx-rates"),
]
