"""Roles and the API permission classes.

- customer: any signed-in, active user; sees only their own orders, invoices and payments
  (selectors scope every read; another customer's object is a 404, never a 403).
- staff: `is_staff` users, members of the "staff" group (common/roles.py) with permissions
  on orders, invoices, payments and stock; staff endpoints use `IsStaff`.
- admin: superusers.

Anonymous calls to protected endpoints get 401 (TokenAuthentication is the first
authentication class, so DRF answers 401 with `WWW-Authenticate: Token`); signed-in
calls without the role get 403; both in the error shape.
"""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class IsStaff(BasePermission):
    """Staff endpoints (draft orders, void, payment links, ...): active staff users only."""

    message = "This action is for staff."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class HasModelPermission(BasePermission):
    """Staff with one Django permission, e.g. `HasModelPermission.of("invoicing.change_invoice")`."""

    perm = ""
    message = "You do not have permission for this action."

    @classmethod
    def of(cls, perm: str) -> type["HasModelPermission"]:
        return type(f"Has_{perm.replace('.', '_')}", (cls,), {"perm": perm})

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff and user.has_perm(self.perm))
