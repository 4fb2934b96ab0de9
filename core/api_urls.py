from rest_framework.routers import SimpleRouter

from core.views import AuditEntryViewSet

router = SimpleRouter(trailing_slash=False)
router.register("audit-log", AuditEntryViewSet, basename="auditentry")
urlpatterns = router.urls
