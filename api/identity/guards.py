"""Who may call a route, as small synchronous checks on the ``Principal`` that
``api.identity.authentication`` put on the connection (a missing login is refused there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.core.errors import DomainError
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):  # a route on an anonymous path asked for a login
        raise DomainError("not_authenticated", "请先登录。")
    return user


def logged_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    _principal(connection)


def citizens_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if _principal(connection).kind is not PrincipalKind.citizen:
        raise DomainError("citizen_only", "仅限个人用户使用。")


def staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if _principal(connection).kind is not PrincipalKind.staff:
        raise DomainError("staff_only", "仅限工作人员使用。")


def staff_roles(*roles: StaffRole) -> Guard:
    """A guard letting only staff with one of ``roles`` through."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = _principal(connection)
        if principal.kind is not PrincipalKind.staff:
            raise DomainError("staff_only", "仅限工作人员使用。")
        if principal.role not in allowed:
            raise DomainError(
                "role_forbidden",
                "当前角色无权进行此操作。",
                required_roles=sorted(r.value for r in allowed),
            )
        if (
            principal.role in TOTP_ROLES
            and not principal.totp_enabled
            and connection.app.state.settings.totp_required_for_staff
        ):
            # They may log in (to enroll: /me/totp has no role guard), not act.
            raise DomainError(
                "totp_enrollment_required", "请先绑定身份验证器（动态口令）后再办理此业务。"
            )

    return guard


# Seal keepers and regulators hold the seal and the register: they act with TOTP
# (WANGQIAN_STAFF_TOTP_REQUIRED, on outside the demo).
TOTP_ROLES = frozenset({StaffRole.seal_keeper, StaffRole.regulator})


company_admins_only = staff_roles(StaffRole.company_admin)
agents_only = staff_roles(StaffRole.sales_agent)
seal_keepers_only = staff_roles(StaffRole.seal_keeper)
regulators_only = staff_roles(StaffRole.regulator)
