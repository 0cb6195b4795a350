"""Who is calling: the ``Principal`` the authentication middleware puts on ``request.user``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from api.identity.models import PrincipalKind, StaffRole


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the bearer token by the guards."""

    kind: PrincipalKind
    session_id: uuid.UUID
    citizen_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    role: StaffRole | None = None
    company_id: uuid.UUID | None = None
    touch_due: bool = False
    totp_enabled: bool = False  # staff: an authenticator is enrolled
