"""Public answers. Nothing here may carry a phone or an ID number, and names only masked."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from api.contracts.models import OrderStatus
from api.core.schemas import Page, ResponseBody


class UnitPublicStatus(enum.StrEnum):
    available = "available"  # 可售
    signing = "signing"  # 签约中 (a live order, not yet signed)
    signed = "signed"  # 已签约
    filed = "filed"  # 已备案
    restricted = "restricted"  # 查封限制
    not_for_sale = "not_for_sale"  # 不可售


STATUS_LABELS = {
    UnitPublicStatus.available: "可售",
    UnitPublicStatus.signing: "签约中",
    UnitPublicStatus.signed: "已签约",
    UnitPublicStatus.filed: "已备案",
    UnitPublicStatus.restricted: "查封限制",
    UnitPublicStatus.not_for_sale: "不可售",
}
# Colours as city building tables conventionally show them (green = on sale, red = seized).
STATUS_COLORS = {
    UnitPublicStatus.available: "#2e7d32",
    UnitPublicStatus.signing: "#ef6c00",
    UnitPublicStatus.signed: "#f9a825",
    UnitPublicStatus.filed: "#1565c0",
    UnitPublicStatus.restricted: "#c62828",
    UnitPublicStatus.not_for_sale: "#757575",
}


class StatusCounts(ResponseBody):
    available: int = 0
    signing: int = 0
    signed: int = 0
    filed: int = 0
    restricted: int = 0
    not_for_sale: int = 0


class LegendEntry(ResponseBody):
    status: UnitPublicStatus
    label: str
    color: str


class Developer(ResponseBody):
    name: str
    uscc: str


class PublicPermit(ResponseBody):
    number: str
    kind: str
    valid_from: date
    valid_until: date
    in_force: bool


class PublicBuildingRef(ResponseBody):
    id: str
    name: str
    units: int


class PublicProject(ResponseBody):
    id: str
    name: str
    district: str
    address: str
    developer: Developer
    buildings: list[PublicBuildingRef]
    permits: list[PublicPermit]
    counts: StatusCounts


class PublicProjectPage(Page):
    items: list[PublicProject]


class PublicUnit(ResponseBody):
    id: str
    room_no: str
    unit: str
    nominal_floor: int
    actual_floor: int
    floor_span: int
    use: str
    layout: str
    building_area: str  # m², two decimals
    inner_area: str
    shared_area: str
    status: UnitPublicStatus
    status_label: str


class PublicBuilding(ResponseBody):
    id: str
    name: str
    address: str
    structure: str
    floors_above: int
    floors_below: int
    project_id: str
    project_name: str
    developer: Developer


class BuildingTable(ResponseBody):
    building: PublicBuilding
    as_of: date
    counts: StatusCounts
    legend: list[LegendEntry]
    units: list[PublicUnit]


class VerifiedUnit(ResponseBody):
    id: uuid.UUID
    project: str
    building: str
    room_no: str
    address: str
    building_area: str  # m², as the survey gives it
    use: str
    label: str = ""  # the flat as people write it: 明湖花园1栋2单元603室


class VerifyAnswer(ResponseBody, omit_defaults=True):
    """合同查询: whether a contract number and password open a genuine contract, and what
    anyone holding both may see of it."""

    genuine: bool
    contract_number: str  # the number asked about, or the contract's when asked by filing number
    status: OrderStatus | None = None
    filing_number: str | None = None  # 备案号, once filed
    filed_at: datetime | None = None
    unit: VerifiedUnit | None = None
    company: str | None = None
    parties: list[dict[str, str]] | None = None
    document_hash: str | None = None
    signatures: list[dict[str, Any]] | None = None
    completed_at: datetime | None = None


class VerifyPdfAnswer(ResponseBody, omit_defaults=True):
    """verify-pdf: whether an uploaded PDF is one of our contracts, byte for byte as the
    platform finished it, and which contract: its number, status and signing time."""

    ours: bool
    unchanged: bool
    contract_number: str | None = None
    status: OrderStatus | None = None
    signed_at: datetime | None = None
    document_hash: str | None = None
    problems: list[str] | None = None


class VerifyQrAnswer(ResponseBody, omit_defaults=True):
    """The QR code of a contract: whether the platform signed it for that contract."""

    genuine: bool
    reason: str
    contract_number: str | None = None
    status_at_signing: str | None = None
    status: OrderStatus | None = None
    signed_at: datetime | None = None
    document_hash: str | None = None
