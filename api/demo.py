"""The demo world (DESIGN.md "The demo"), loaded through the same services as real data.

Loading is idempotent: a second run on the same data directory finds the demo developer
by its credit code and only re-describes what is there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.policy import ContractPolicy
from api.core.clock import business_date
from api.core.keys import ServiceKeys
from api.escrow.accounts import (
    approved_account_for_project,
    city_resale_account,
    register_approved_account,
)
from api.escrow.models import AccountScope
from api.identity.models import StaffRole
from api.identity.principal import Principal
from api.identity.staff import create_staff_member, existing_staff_phones, staff_by_phone
from api.register import service as register
from api.register.models import (
    Building,
    Company,
    Permit,
    PermitKind,
    Project,
    ResaleTitle,
    RestrictionKind,
    Unit,
)
from api.register.survey import import_survey
from signing.gb_codes import credit_code_check_char, resident_id_check_char

DEVELOPER_USCC_BODY = "91440000MA5DEMW01"  # fictional; the check character is computed
OLD_DEVELOPER_USCC_BODY = "91440000MA5DEMW02"
SURVEY_NO = "SY-DEMO-0001"
RESALE_SURVEY_NO = "SY-DEMO-0901"
PERMIT_NO = "示范预售许字(2026)第0001号"
TITLE_NO = "粤(2020)示范市不动产权第0000123号"
TITLE_CHECK_CODE = "8D3F2A"


def _resident_id(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


@dataclass(frozen=True)
class DemoPerson:
    role: str
    name: str
    phone: str
    id_number: str

    def describe(self) -> dict[str, str]:
        return {
            "role": self.role,
            "name": self.name,
            "phone": self.phone,
            "id_number": self.id_number,
        }


# Fictional people; ID numbers carry valid check characters so real-name checks pass.
PEOPLE = [
    DemoPerson("company_admin", "陈管理", "13800000004", _resident_id("44010119800101001")),
    DemoPerson("sales_agent", "王销售", "13800000001", _resident_id("44010119900202002")),
    DemoPerson("seal_keeper", "赵印章", "13800000002", _resident_id("44010119850303003")),
    DemoPerson("regulator", "周监管", "13800000003", _resident_id("44010119750404004")),
    DemoPerson("buyer", "张三", "13900000001", _resident_id("11010519910505005")),
    DemoPerson("buyer", "李四", "13900000002", _resident_id("11010519920606006")),
    DemoPerson("seller", "王五", "13900000003", _resident_id("11010519700707007")),
]

FLOORS = 6
ROOMS_PER_FLOOR = 4
LAYOUTS = ["三室两厅", "两室两厅", "两室两厅", "三室两厅"]
# (building area, inner area) per room position, m²; shared = building - inner.
ROOM_AREAS = [("118.36", "96.12"), ("89.12", "72.37"), ("89.12", "72.37"), ("118.36", "96.12")]


def demo_survey(survey_no: str = SURVEY_NO) -> dict[str, Any]:
    """A 户室对照表 for the demo building: floor 1 commercial, floors 2-6 homes."""
    rooms: list[dict[str, Any]] = []
    for floor in range(1, FLOORS + 1):
        for position in range(ROOMS_PER_FLOOR):
            building_area, inner_area = ROOM_AREAS[position]
            shared = str(Decimal(building_area) - Decimal(inner_area))
            rooms.append(
                {
                    "room_no": f"{floor}{position + 1:02d}",
                    "unit": "1" if position < 2 else "2",
                    "nominal_floor": floor,
                    "actual_floor": floor,
                    "building_area": building_area,
                    "inner_area": inner_area,
                    "shared_area": shared,
                    "balcony_area": "0" if floor == 1 else "4.20",
                    "use": "商业" if floor == 1 else "住宅",
                    "layout": "商铺" if floor == 1 else LAYOUTS[position],
                    "structure": "钢筋混凝土",
                }
            )
    return {
        "format": "wangqian.survey/1",
        "survey_no": survey_no,
        "surveyed_on": "2026-03-01",
        "surveyor": "示范市房产测绘所",
        "stage": "predicted",
        "rooms": rooms,
    }


DEMO_ACCOUNT_NUMBER = "6222020200112233445"
DEMO_RESALE_ACCOUNT_NUMBER = "6222020200998877665"
DEMO_MILESTONES = [
    {"code": "foundation", "name": "基础完成", "key_amount_fen": 50_000_000},
    {"code": "topped_out", "name": "主体封顶", "key_amount_fen": 20_000_000},
    {"code": "completed", "name": "竣工验收", "key_amount_fen": 0},
]


async def _ensure_supervised_account(
    session: AsyncSession, *, project_id: uuid.UUID, company_id: uuid.UUID, now: datetime
) -> None:
    """The demo project's approved supervised account; reused if present."""
    if await approved_account_for_project(session, project_id) is not None:
        return
    await register_approved_account(
        session,
        project_id=project_id,
        company_id=company_id,
        bank_name="示范银行明湖支行",
        account_name="示范市明湖置业有限公司预售资金监管专户",
        account_number=DEMO_ACCOUNT_NUMBER,
        milestones=DEMO_MILESTONES,
        note="演示数据",
        now=now,
    )


async def load_demo_world(
    session: AsyncSession, keys: ServiceKeys, *, now: datetime, supervised_account: bool = True
) -> dict[str, Any]:
    """Create the demo world if missing; return its description (ids as strings).

    ``supervised_account=False`` leaves the demo project without its approved supervised
    account, for tests that open one through the API themselves.
    """
    uscc = DEVELOPER_USCC_BODY + credit_code_check_char(DEVELOPER_USCC_BODY)
    company = await session.scalar(select(Company).where(Company.uscc == uscc))
    if company is None:
        await _create_world(session, keys, uscc=uscc, now=now)
        company = await session.scalar(select(Company).where(Company.uscc == uscc))
        assert company is not None
    project = await session.scalar(
        select(Project).where(Project.company_id == company.id).order_by(Project.created_at)
    )
    assert project is not None
    # Outside the creation branch so a data directory from before escrow gets one too.
    if supervised_account:
        await _ensure_supervised_account(
            session, project_id=project.id, company_id=company.id, now=now
        )
    if await city_resale_account(session) is None:
        await register_approved_account(
            session,
            project_id=None,
            company_id=None,
            scope=AccountScope.resale,
            bank_name="示范银行市民中心支行",
            account_name="示范市不动产交易中心存量房交易资金监管专户",
            account_number=DEMO_RESALE_ACCOUNT_NUMBER,
            milestones=[],
            note="演示数据",
            now=now,
        )
    await _create_staff(session, keys, company, now=now)
    return await _describe(session, company)


async def _create_staff(
    session: AsyncSession, keys: ServiceKeys, company: Company, *, now: datetime
) -> None:
    """The demo company's admin, sales agent (on the demo project) and seal keeper, and a
    regulator; each created only if no staff member has that phone yet."""
    project = await session.scalar(
        select(Project).where(Project.company_id == company.id).order_by(Project.created_at)
    )
    assert project is not None
    existing = await existing_staff_phones(session, keys, [p.phone for p in PEOPLE])
    for person in PEOPLE:
        if person.role not in StaffRole.__members__ or person.phone in existing:
            continue
        role = StaffRole(person.role)
        await create_staff_member(
            session,
            keys,
            name=person.name,
            phone=person.phone,
            role=role,
            company_id=None if role is StaffRole.regulator else company.id,
            project_ids=[project.id] if role is StaffRole.sales_agent else None,
            now=now,
        )


async def _create_world(
    session: AsyncSession, keys: ServiceKeys, *, uscc: str, now: datetime
) -> None:
    today = business_date(now)
    company = await register.create_company(
        session,
        name="示范市明湖置业有限公司",
        uscc=uscc,
        legal_representative="陈明湖",
        phone="0760-88880000",
        address="示范市中心区明湖路 1 号",
        now=now,
    )
    project = await register.create_project(
        session,
        company_id=company.id,
        name="明湖花园",
        district="中心区",
        address="示范市中心区明湖路 8 号",
        now=now,
    )
    building = await register.create_building(
        session,
        project_id=project.id,
        name="1栋",
        survey_no=SURVEY_NO,
        address="示范市中心区明湖路 8 号 1 栋",
        structure="钢筋混凝土",
        floors_above=FLOORS,
        floors_below=0,
        now=now,
    )
    await import_survey(session, json.dumps(demo_survey()).encode(), now=now)
    units = {
        u.room_no: u
        for u in await session.scalars(select(Unit).where(Unit.building_id == building.id))
    }
    homes = [u.id for no, u in units.items() if not no.startswith("1")]
    await register.grant_permit(
        session,
        project_id=project.id,
        kind=PermitKind.presale,
        number=PERMIT_NO,
        valid_from=today - timedelta(days=30),
        valid_until=today + timedelta(days=365),
        unit_ids=homes,
        issuer="示范市住房和城乡建设局",
        now=now,
    )
    await register.add_restriction(
        session,
        unit_id=units["101"].id,
        kind=RestrictionKind.property_management,
        source="示范市住房和城乡建设局",
        document_no="物管用房确认(2026)001号",
        starts_on=today - timedelta(days=60),
        now=now,
    )
    await register.add_restriction(
        session,
        unit_id=units["502"].id,
        kind=RestrictionKind.judicial_seizure,
        source="示范市中心区人民法院",
        document_no="(2026)示0101执保123号",
        starts_on=today - timedelta(days=5),
        ends_on=today + timedelta(days=3 * 365),
        now=now,
    )

    # A resale flat in an older estate, owned by the demo seller.
    old_uscc = OLD_DEVELOPER_USCC_BODY + credit_code_check_char(OLD_DEVELOPER_USCC_BODY)
    old_company = await register.create_company(
        session, name="示范市旧城房地产开发有限公司", uscc=old_uscc, now=now
    )
    old_project = await register.create_project(
        session, company_id=old_company.id, name="旧城花园", district="老城区", now=now
    )
    await register.create_building(
        session,
        project_id=old_project.id,
        name="3栋",
        survey_no=RESALE_SURVEY_NO,
        address="示范市老城区旧城路 3 号",
        structure="砖混",
        floors_above=6,
        now=now,
    )
    resale_survey = {
        **demo_survey(RESALE_SURVEY_NO),
        "stage": "measured",
        "rooms": [r for r in demo_survey()["rooms"] if r["room_no"] == "501"],
    }
    await import_survey(session, json.dumps(resale_survey).encode(), now=now)
    resale_unit = await session.scalar(
        select(Unit).join(Building).where(Building.survey_no == RESALE_SURVEY_NO)
    )
    assert resale_unit is not None
    seller = next(p for p in PEOPLE if p.role == "seller")
    await register.register_title(
        session,
        keys,
        unit_id=resale_unit.id,
        certificate_no=TITLE_NO,
        check_code=TITLE_CHECK_CODE,
        registered_on=date(2020, 8, 1),
        owners=[register.TitleOwnerInput(name=seller.name, id_number=seller.id_number)],
        now=now,
    )


async def _describe(session: AsyncSession, company: Company) -> dict[str, Any]:
    project = await session.scalar(
        select(Project).where(Project.company_id == company.id).order_by(Project.created_at)
    )
    assert project is not None
    building = await session.scalar(select(Building).where(Building.survey_no == SURVEY_NO))
    permit = await session.scalar(select(Permit).where(Permit.number == PERMIT_NO))
    title = await session.scalar(select(ResaleTitle).where(ResaleTitle.certificate_no == TITLE_NO))
    assert building is not None and permit is not None and title is not None
    units = await session.scalars(
        select(Unit)
        .where(Unit.building_id == building.id)
        .order_by(Unit.actual_floor, Unit.room_no)
    )
    return {
        "company": {"id": str(company.id), "name": company.name, "uscc": company.uscc},
        "project": {"id": str(project.id), "name": project.name},
        "building": {
            "id": str(building.id),
            "name": building.name,
            "survey_no": building.survey_no,
        },
        "permit": {"id": str(permit.id), "number": permit.number, "kind": permit.kind.value},
        "units": [{"id": str(u.id), "room_no": u.room_no, "use": u.use} for u in units],
        "resale_title": {
            "id": str(title.id),
            "unit_id": str(title.unit_id),
            "certificate_no": title.certificate_no,
            "check_code": TITLE_CHECK_CODE,
        },
        "people": [p.describe() for p in PEOPLE],
    }


def write_demo_file(data_dir: Path, world: dict[str, Any]) -> Path:
    path = data_dir / "demo.json"
    path.write_text(json.dumps(world, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


# Rooms the demo may put its ready-to-sign order on, in turn (never those the tests use).
DEMO_ORDER_ROOMS = ("603", "604", "503", "504", "403", "404")


async def ensure_demo_order(
    session: AsyncSession, keys: ServiceKeys, *, now: datetime, policy: ContractPolicy
) -> dict[str, Any] | None:
    """An issued order for the demo buyer 张三, so a person can go from login to a signed
    contract on a phone without touching the API. An order still waiting for signatures
    is reused; otherwise a new one is issued on the next free room. None when every
    candidate room is taken."""
    from api.contracts import orders, reads
    from api.contracts import schemas as contract_schemas
    from api.contracts.models import ContractKind, OrderStatus, PaymentMethod
    from api.identity.models import PrincipalKind

    agent_person = next(p for p in PEOPLE if p.role == "sales_agent")
    buyer = next(p for p in PEOPLE if p.role == "buyer")
    agent = await staff_by_phone(session, keys, agent_person.phone)
    building = await session.scalar(select(Building).where(Building.survey_no == SURVEY_NO))
    assert agent is not None and building is not None
    principal = Principal(
        kind=PrincipalKind.staff,
        session_id=uuid.uuid4(),
        staff_id=agent.id,
        role=agent.role,
        company_id=agent.company_id,
    )
    units = {
        u.room_no: u
        for u in await session.scalars(
            select(Unit).where(Unit.building_id == building.id, Unit.room_no.in_(DEMO_ORDER_ROOMS))
        )
    }
    for room in DEMO_ORDER_ROOMS:
        unit = units[room]
        await orders.expire_due_orders(session, now, unit_id=unit.id)
        live = await reads.live_order_on(session, unit.id)
        if live is not None and live[0] is OrderStatus.awaiting_signatures and live[1]:
            scene = live[1]
        elif live is None:
            order = await orders.create_order(
                session,
                keys,
                principal,
                contract_schemas.NewOrder(
                    unit_id=unit.id,
                    kind=ContractKind.presale,
                    buyers=[
                        contract_schemas.BuyerIn(
                            name=buyer.name, id_number=buyer.id_number, phone=buyer.phone
                        )
                    ],
                    price_fen=236_720_000,
                    payment_method=PaymentMethod.commercial_loan,
                    delivery_date=date(2028, 6, 30),
                    deposit_fen=5_000_000,
                    down_payment_fen=71_016_000,
                ),
                now=now,
            )
            issued = await orders.issue_order(
                session, keys, principal, order.id, now=now, policy=policy
            )
            scene = issued.scene
        else:
            continue
        return {
            "room_no": room,
            "buyer_phone": buyer.phone,
            "scan_url": orders.scan_link(policy.public_base_url, scene),
        }
    return None
