from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One change a person (or a credential acting for one) made to a contract, price, budget, key,
    member, invoice or payment. Append-only."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Kept when the user is deleted, and names machine credentials.
    actor_label = models.CharField(max_length=200)
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # tenant audit page and /api/v1/audit-log?tenant=…
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["object_type", "object_id"]),
        ]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type}#{self.object_id}"
