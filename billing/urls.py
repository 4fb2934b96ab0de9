from django.urls import path

from billing import budget_views, views

urlpatterns = [
    path("t/<slug:tenant>/bills/", views.bills, name="bills"),
    path("t/<slug:tenant>/bills/<int:pk>/", views.bill_detail, name="bill"),
    path("t/<slug:tenant>/contracts/", views.contracts, name="contracts"),
    path("t/<slug:tenant>/estimate/", views.estimate_page, name="estimate"),
    path("t/<slug:tenant>/contracts/<int:pk>/", views.contract_detail, name="contract"),
    path("t/<slug:tenant>/budgets/", budget_views.budgets, name="budgets"),
    path("t/<slug:tenant>/budgets/<int:pk>/edit/", budget_views.budget_edit, name="budget-edit"),
    path(
        "t/<slug:tenant>/budget-raises/<int:pk>/decide/",
        budget_views.budget_raise_decide,
        name="budget-raise-decide",
    ),
    path("t/<slug:tenant>/channels/", budget_views.channels, name="channels"),
    path("t/<slug:tenant>/channels/<int:pk>/", budget_views.channel_change, name="channel-change"),
    path("t/<slug:tenant>/channels/<int:pk>/test/", budget_views.channel_test, name="channel-test"),
    path("staff/bills/", views.finance_bills, name="finance-bills"),
    path("staff/bills/close/", views.finance_bills_close, name="finance-bills-close"),
    path("staff/fx-rates/", views.fx_rates, name="fx-rates"),
]
