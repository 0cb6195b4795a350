"""Arranging register data for tests through the real services."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import business_date
from api.core.keys import ServiceKeys
from api.identity.consent import PI_NOTICE_VERSION
from api.identity.models import Citizen, IdentityLevel
from api.identity.profile import set_citizen_phone
from api.identity.verification import ID_NUMBER_FIELD
from api.register import service as register
from api.register.models import PermitKind, Unit
from api.register.survey import import_survey
from signing.gb_codes import credit_code_check_char

USCC_BODY = "91440101MA5CTEW01"
USCC = USCC_BODY + credit_code_check_char(USCC_BODY)


def room(room_no: str, floor: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "room_no": room_no,
        "unit": "1",
        "nominal_floor": floor,
        "actual_floor": floor,
        "building_area": "89.12",
        "inner_area": "72.30",
        "shared_area": "16.82",
        "balcony_area": "3.20",
        "shared_coefficient": "0.232642",
        "use": "住宅",
        "layout": "两室两厅",
    }
    base.update(overrides)
    return base


def survey(survey_no: str, rooms: list[dict[str, Any]], **overrides: Any) -> bytes:
    body = {
        "format": "wangqian.survey/1",
        "survey_no": survey_no,
        "surveyed_on": "2026-03-01",
        "surveyor": "测试测绘所",
        "rooms": rooms,
    }
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False).encode()


@dataclass
class World:
    company_id: Any
    project_id: Any
    building_id: Any
    units: dict[str, Any]  # room_no -> unit id
    today: date


async def make_world(
    session: AsyncSession, now: datetime, *, floors: int = 3, per_floor: int = 2
) -> World:
    """A developer, a project and one surveyed building of ``floors × per_floor`` homes."""
    company = await register.create_company(session, name="测试置业有限公司", uscc=USCC, now=now)
    project = await register.create_project(
        session, company_id=company.id, name="测试花园", district="测试区", now=now
    )
    building = await register.create_building(
        session, project_id=project.id, name="1栋", survey_no="SY-T-1", floors_above=floors, now=now
    )
    rooms = [room(f"{f}{r:02d}", f) for f in range(1, floors + 1) for r in range(1, per_floor + 1)]
    await import_survey(session, survey("SY-T-1", rooms), now=now)
    units = {
        u.room_no: u.id
        for u in await session.scalars(select(Unit).where(Unit.building_id == building.id))
    }
    return World(company.id, project.id, building.id, units, business_date(now))


async def grant_presale(
    session: AsyncSession, world: World, now: datetime, rooms: list[str], **kw: Any
):
    return await register.grant_permit(
        session,
        project_id=world.project_id,
        kind=kw.pop("kind", PermitKind.presale),
        number=kw.pop("number", "测试预售许字(2026)第0001号"),
        valid_from=kw.pop("valid_from", world.today - timedelta(days=10)),
        valid_until=kw.pop("valid_until", world.today + timedelta(days=365)),
        unit_ids=[world.units[r] for r in rooms],
        now=now,
        **kw,
    )


async def face_verified_citizen(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    phone: str,
    name: str,
    id_number: str,
    now: datetime,
) -> Citizen:
    """A citizen who consented, passed real-name and the face check, written directly: load
    runs and multi-process tests need many, faster than the mocks' pages give them."""
    protected = keys.protect_id_number(id_number, field=ID_NUMBER_FIELD)
    citizen = Citizen(
        name=name,
        id_number_encrypted=protected.encrypted,
        id_number_claim_index=protected.index,
        id_number_index=protected.index,
        id_number_masked=protected.masked,
        identity_level=IdentityLevel.face_verified,
        pi_consent_version=PI_NOTICE_VERSION,
        pi_consent_at=now,
        real_name_at=now,
        face_verified_at=now,
        created_at=now,
    )
    set_citizen_phone(keys, citizen, phone)
    session.add(citizen)
    await session.flush()
    return citizen
