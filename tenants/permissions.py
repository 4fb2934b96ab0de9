from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.selectors import has_staff_role, is_person


class IsPerson(BasePermission):
    """Administration endpoints act for a person: a portal session or a personal (mlt_) token."""

    message = "This endpoint needs a personal token (mlt_…) or a portal session, not a machine credential."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_person(request.user) and request.user.is_active


def staff_only(*roles: str) -> type[BasePermission]:
    class HasStaffRole(BasePermission):
        message = "Only provider staff in " + " or ".join(roles) + " may do this."

        def has_permission(self, request: Request, view: Any) -> bool:
            return has_staff_role(request.user, *roles)

    return HasStaffRole
