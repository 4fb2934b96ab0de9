from rest_framework.routers import SimpleRouter

from invoices.api import InvoiceViewSet

router = SimpleRouter(trailing_slash=False)
router.register("invoices", InvoiceViewSet, basename="invoice")
urlpatterns = router.urls
