from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from billing.selectors import billing_tenant_ids
from invoices.models import Invoice


def invoices_for_user(user: Any) -> QuerySet[Invoice]:
    """Owners, admins and members of the tenant and the staff who see it (never developers)."""
    return (
        Invoice.objects.filter(tenant_id__in=billing_tenant_ids(user))
        .select_related("tenant")
        .prefetch_related("lines", "payments__invoice", "credit_notes__invoice")
    )
