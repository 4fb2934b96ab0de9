"""What the billing and invoice portal pages share: the tenant a page may show, staff-only guards, bill lines
grouped for display."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext as _

from tenants.selectors import can_see_billing, is_staff_member, tenant_get_for_user


def billing_tenant(request: HttpRequest, slug: str) -> Any:
    """The tenant of a bills/invoices/contracts page: another tenant's slug is a 404; developers get a 403."""
    tenant = tenant_get_for_user(user=request.user, slug=slug)
    if not can_see_billing(request.user, tenant):
        raise PermissionDenied(_("Bills and contracts are for the tenant's owners, admins and members."))
    return tenant


def require_staff(request: HttpRequest) -> None:
    if not is_staff_member(request.user):
        raise PermissionDenied(_("Provider staff only."))


def line_groups(lines: list[Any]) -> tuple[list[tuple[str, list[Any]]], list[Any]]:
    """Usage lines by model (in bill order), and the other lines (tiers, discount, commitment, adjustments)."""
    by_model: dict[str, list[Any]] = defaultdict(list)
    others = []
    for line in lines:
        if line.kind == "usage":
            by_model[line.model].append(line)
        else:
            others.append(line)
    return list(by_model.items()), others
