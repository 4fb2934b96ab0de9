"""Reading bills with the roles of SPEC §4: owners, admins, members and staff who see the tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from billing.models import Bill
from tenants.selectors import can_see_billing, tenants_for_user


def billing_tenant_ids(user: Any) -> list[int]:
    return [tenant.pk for tenant in tenants_for_user(user) if can_see_billing(user, tenant)]


def bills_for_user(user: Any) -> QuerySet[Bill]:
    return (
        Bill.objects.filter(tenant_id__in=billing_tenant_ids(user))
        .select_related("tenant", "project", "contract", "invoice")
        .prefetch_related("lines")
    )
