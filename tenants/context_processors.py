from typing import Any

from django.http import HttpRequest

from tenants.models import Role
from tenants.roles import ACCOUNT_MANAGERS, FINANCE, PLATFORM_ADMINS
from tenants.selectors import (
    can_see_billing,
    is_person,
    membership_for,
    sees_all_tenants,
    staff_roles,
    tenants_for_user,
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The tenant switcher and the role-dependent menu."""
    user = getattr(request, "user", None)
    if not is_person(user):
        return {}
    roles = staff_roles(user)
    member_tenants = list(
        tenants_for_user(user).filter(memberships__user=user).values_list("slug", "name").order_by("name")
    )
    resolver = getattr(request, "resolver_match", None)
    current = resolver.kwargs.get("tenant") if resolver else None
    sees_billing, sees_members, current_name, suspended = False, False, None, False
    if current:
        tenant = tenants_for_user(user).filter(slug=current).first()
        if tenant is None:  # not theirs to see (the page answers 404): no menu for it either
            current = None
        else:
            sees_billing, current_name = can_see_billing(user, tenant), tenant.name
            suspended = tenant.status == tenant.Status.SUSPENDED
            # developers have no member list (the page refuses them), unless staff
            role = getattr(membership_for(user=user, tenant=tenant), "role", None)
            sees_members = bool(roles) or role != Role.DEVELOPER
    return {
        "nav_sees_billing": sees_billing,
        "nav_sees_members": sees_members,
        "nav_current_tenant_name": current_name,
        "nav_current_tenant_suspended": suspended,
        "nav_tenants": member_tenants,
        "nav_current_tenant": current,
        "nav_is_staff": bool(roles),
        "nav_is_account_manager": ACCOUNT_MANAGERS in roles,
        "nav_is_account_manager_only": ACCOUNT_MANAGERS in roles and not sees_all_tenants(user),
        "nav_is_finance": FINANCE in roles,
        "nav_is_platform_admin": PLATFORM_ADMINS in roles,
    }
