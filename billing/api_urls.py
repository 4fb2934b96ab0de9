from django.urls import URLPattern, path
from rest_framework.routers import SimpleRouter

from billing.api import (
    AlertViewSet,
    BillViewSet,
    BudgetRaiseViewSet,
    BudgetViewSet,
    ChannelViewSet,
    ContractViewSet,
    EstimateView,
    FxRateViewSet,
    QuotaCheckView,
)

router = SimpleRouter(trailing_slash=False)
router.register("fx-rates", FxRateViewSet, basename="fxrate")
router.register("contracts", ContractViewSet, basename="contract")
router.register("bills", BillViewSet, basename="bill")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("channels", ChannelViewSet, basename="channel")
router.register("alerts", AlertViewSet, basename="alert")
router.register("budget-raises", BudgetRaiseViewSet, basename="budgetraise")
# Resolved ahead of every other API path (config/urls.py): gateways ask before every LLM call.
hot_urlpatterns: list[URLPattern] = [path("quota/check", QuotaCheckView.as_view(), name="quota-check")]

urlpatterns = [
    path("estimate", EstimateView.as_view(), name="estimate"),
    *router.urls,
]
