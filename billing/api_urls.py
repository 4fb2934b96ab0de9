from rest_framework.routers import SimpleRouter

from billing.api import FxRateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("fx-rates", FxRateViewSet, basename="fxrate")
urlpatterns = router.urls
