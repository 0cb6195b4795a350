"""Register bodies, including the survey file (户室对照表) format.

Survey file, ``wangqian.survey/1`` (JSON, UTF-8), one building per file::

    {
      "format": "wangqian.survey/1",
      "survey_no": "SY-2024-0001",        // the building's 测量号; the building must exist
      "surveyed_on": "2024-03-01",
      "surveyor": "某某测绘有限公司",
      "stage": "predicted",               // 预测 before presale, "measured" (实测) after
      "rooms": [
        {"room_no": "101", "unit": "1", "nominal_floor": 1, "actual_floor": 1,
         "floor_span": 1, "building_area": "89.12", "inner_area": "72.30",
         "shared_area": "16.82", "balcony_area": "3.20", "shared_coefficient": "0.232642",
         "use": "住宅", "layout": "三室两厅", "structure": "钢筋混凝土"}
      ]
    }

Areas are m² as decimal strings (or JSON numbers) with at most 4 decimals. A room's
建筑面积 must equal 套内面积 + 分摊面积 within 0.01 m²; when a 分摊系数 is given,
套内面积 × 系数 must equal 分摊面积 within 0.01 m². Re-importing a building updates the
figures of rooms it already has (实测 replaces 预测) and adds the new ones.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from api.core.schemas import Page, RequestBody, ResponseBody
from api.register.models import PermitChangeStatus, PermitKind, RegisterAction, RestrictionKind

SURVEY_FORMAT = "wangqian.survey/1"
UNIT_USES = ("住宅", "商业", "办公", "车库", "储藏", "其他")


class SurveyRoom(RequestBody):
    room_no: str
    nominal_floor: int
    actual_floor: int
    building_area: Decimal
    inner_area: Decimal
    shared_area: Decimal
    use: str
    unit: str = ""
    floor_span: int = 1
    balcony_area: Decimal = Decimal(0)
    shared_coefficient: Decimal | None = None
    layout: str = ""
    structure: str = ""


class SurveyFile(RequestBody):
    format: Literal["wangqian.survey/1"]
    survey_no: str
    surveyed_on: date
    rooms: list[msgspec.Raw]
    surveyor: str = ""
    stage: Literal["predicted", "measured"] = "predicted"


class SurveyRowError(msgspec.Struct, kw_only=True):
    """One reason a survey file was refused; ``row`` is the 1-based position in ``rooms``."""

    row: int | None
    room_no: str | None
    field: str | None
    code: str
    message: str


class SurveyImportResult(msgspec.Struct, kw_only=True):
    building_id: str
    created: int
    updated: int


# ------------------------------------------------------------------ the regulator's register

# At least one visible character: a document number of spaces names no document.
DocumentNo = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\S")]
Authority = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
UnitIds = Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=5000)]


class NewPermit(RequestBody):
    """A presale (预售) or spot-sale (现售) permit over units of one project."""

    project_id: uuid.UUID
    kind: PermitKind
    number: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\S")]
    issuer: Authority
    valid_from: date
    valid_until: date
    unit_ids: UnitIds


class NewPermitChange(RequestBody):
    """A permit change (变更): the whole new set of units and/or new validity dates; what
    is left out stays as it is."""

    document_no: DocumentNo
    reason: Reason = ""
    unit_ids: UnitIds | None = None
    valid_from: date | None = None
    valid_until: date | None = None


class Decision(RequestBody):
    """Approving needs no reason; rejecting does."""

    reason: Reason = ""


class PermitRevocation(RequestBody):
    document_no: DocumentNo
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]


class NewRestriction(RequestBody):
    """司法查封 / 行政限制 (stop sales), 物管用房 (never for sale), 抵押 (recorded only).
    ``authority`` is the court, the bureau or the mortgagee; ``starts_on`` defaults to
    today (Asia/Shanghai)."""

    kind: RestrictionKind
    authority: Authority
    document_no: DocumentNo
    starts_on: date | None = None
    ends_on: date | None = None


class RestrictionLifting(RequestBody):
    """Who lifted it (解封 court, bureau, bank) and the lifting document."""

    authority: Authority
    document_no: DocumentNo


class PermitChangeAnswer(ResponseBody):
    id: uuid.UUID
    permit_id: uuid.UUID
    status: PermitChangeStatus
    valid_from: date  # proposed
    valid_until: date
    unit_ids: list[uuid.UUID]  # the whole proposed set
    added_unit_ids: list[uuid.UUID]  # against the permit when the change started
    removed_unit_ids: list[uuid.UUID]
    document_no: str
    reason: str
    started_at: datetime
    decided_at: datetime | None
    decision_reason: str


class PermitAnswer(ResponseBody):
    id: uuid.UUID
    project_id: uuid.UUID
    kind: PermitKind
    number: str
    issuer: str
    valid_from: date
    valid_until: date
    # in_force | not_yet_valid | expired | revoked, on the business day of the answer
    status: str
    unit_ids: list[uuid.UUID]
    open_change: PermitChangeAnswer | None
    created_at: datetime
    revoked_at: datetime | None
    revoke_document_no: str
    revoke_reason: str


class RestrictionAnswer(ResponseBody):
    id: uuid.UUID
    unit_id: uuid.UUID
    kind: RestrictionKind
    authority: str
    document_no: str
    starts_on: date
    ends_on: date | None
    in_effect: bool  # today, lifting and dates considered
    blocks_sale: bool  # a seizure or administrative restriction in effect, or a 物管用房
    created_at: datetime
    lifted_at: datetime | None
    lift_authority: str
    lift_document_no: str


class PermitRef(ResponseBody):
    id: uuid.UUID
    number: str
    kind: PermitKind
    status: str
    valid_from: date
    valid_until: date
    units: int
    open_change_id: uuid.UUID | None


class RegisterBuildingRef(ResponseBody):
    id: uuid.UUID
    name: str
    units: int


class RegisterProject(ResponseBody):
    id: uuid.UUID
    name: str
    district: str
    address: str
    developer_name: str
    developer_uscc: str
    buildings: list[RegisterBuildingRef]
    permits: list[PermitRef]


class RegisterProjectPage(Page):
    items: list[RegisterProject]


class RegisterProjectDetail(ResponseBody):
    project: RegisterProject
    permits: list[PermitAnswer]  # with their units and open changes


class UnitPermitRef(ResponseBody):
    id: uuid.UUID
    number: str
    kind: PermitKind
    status: str
    change_open: bool


class RegisterUnit(ResponseBody):
    id: uuid.UUID
    room_no: str
    unit: str
    nominal_floor: int
    actual_floor: int
    use: str
    layout: str
    building_area: str  # m²
    inner_area: str
    shared_area: str
    permits: list[UnitPermitRef]
    restrictions: list[RestrictionAnswer]  # not lifted (current and future)
    # What order creation will say today: the kinds of sale allowed, and why not.
    saleable_as: list[PermitKind]
    permit_change_pending: bool
    restricted: bool
    property_management: bool
    mortgaged: bool


class RegisterBuilding(ResponseBody):
    id: uuid.UUID
    name: str
    project_id: uuid.UUID
    project_name: str
    developer_name: str


class RegisterBuildingUnits(ResponseBody):
    building: RegisterBuilding
    as_of: date
    units: list[RegisterUnit]


class AuditEntryAnswer(ResponseBody):
    id: uuid.UUID
    at: datetime
    action: RegisterAction
    actor_staff_id: uuid.UUID | None  # None: the platform (demo world, data brought over)
    actor_name_masked: str
    project_id: uuid.UUID
    subject_id: uuid.UUID
    document_no: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(Page):
    items: list[AuditEntryAnswer]
