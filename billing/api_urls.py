from rest_framework.routers import SimpleRouter

from billing.api import BillViewSet, ContractViewSet, FxRateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("fx-rates", FxRateViewSet, basename="fxrate")
router.register("contracts", ContractViewSet, basename="contract")
router.register("bills", BillViewSet, basename="bill")
urlpatterns = router.urls
