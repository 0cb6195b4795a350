"""Register tables. Areas are integers of 0.0001 m² (never floats)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.core.validators import IdType
from api.core.versions import REGISTER, track
from api.db.base import Base, HasId, str_enum


class PermitKind(enum.StrEnum):
    """预售许可 (presale, the building is not finished) or 现售许可 (spot sale)."""

    presale = "presale"
    spot = "spot"


class RestrictionKind(enum.StrEnum):
    judicial_seizure = "judicial_seizure"  # 司法查封
    administrative = "administrative"  # 行政限制
    property_management = "property_management"  # 物管用房: never for sale
    mortgage = "mortgage"  # 抵押: recorded and shown to staff, does not stop a sale


class PermitChangeStatus(enum.StrEnum):
    """A permit change (许可变更): started, then approved or rejected by a regulator."""

    open = "open"
    approved = "approved"
    rejected = "rejected"


class RegisterAction(enum.StrEnum):
    """What a register audit entry records."""

    permit_granted = "permit_granted"
    permit_change_started = "permit_change_started"
    permit_change_approved = "permit_change_approved"
    permit_change_rejected = "permit_change_rejected"
    permit_revoked = "permit_revoked"
    restriction_added = "restriction_added"
    restriction_lifted = "restriction_lifted"


class Company(HasId, Base):
    """A developer or other company, identified by its unified social credit code."""

    __tablename__ = "companies"

    name: Mapped[str] = mapped_column(String(200))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    legal_representative: Mapped[str] = mapped_column(String(100), default="")
    # The company's published switchboard, not a person's number: kept as registered.
    phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime]


class Project(HasId, Base):
    __tablename__ = "projects"

    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime]

    company: Mapped[Company] = relationship(lazy="raise")


class Building(HasId, Base):
    """A building (栋) as surveyed; ``survey_no`` is the surveyor's 测量号."""

    __tablename__ = "buildings"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    survey_no: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    structure: Mapped[str] = mapped_column(String(50), default="")
    floors_above: Mapped[int] = mapped_column(Integer, default=0)
    floors_below: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]

    project: Mapped[Project] = relationship(lazy="raise")


class Unit(HasId, Base):
    """A room (户室) of a building with its survey figures (户室对照表 row)."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("building_id", "room_no"),
        CheckConstraint(
            "building_area >= 0 AND inner_area >= 0 AND shared_area >= 0 AND balcony_area >= 0",
            name="areas_not_negative",
        ),
    )

    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"), index=True)
    room_no: Mapped[str] = mapped_column(String(32))
    unit_label: Mapped[str] = mapped_column(String(16), default="")  # 单元
    nominal_floor: Mapped[int] = mapped_column(Integer)  # 名义层
    actual_floor: Mapped[int] = mapped_column(Integer)  # 实际层
    floor_span: Mapped[int] = mapped_column(Integer, default=1)  # 实际层数 (duplexes span 2)
    building_area: Mapped[int] = mapped_column(Integer)  # 建筑面积, 0.0001 m²
    inner_area: Mapped[int] = mapped_column(Integer)  # 套内面积
    shared_area: Mapped[int] = mapped_column(Integer)  # 分摊面积
    balcony_area: Mapped[int] = mapped_column(Integer, default=0)  # 阳台面积
    shared_coefficient: Mapped[str] = mapped_column(String(16), default="")  # 分摊系数
    use: Mapped[str] = mapped_column(String(16))  # 住宅, 商业, 办公, 车库, 其他
    layout: Mapped[str] = mapped_column(String(32), default="")  # 户型
    structure: Mapped[str] = mapped_column(String(50), default="")
    surveyed_at: Mapped[datetime]


permit_units = Table(
    "permit_units",
    Base.metadata,
    Column("permit_id", ForeignKey("permits.id"), primary_key=True),
    Column("unit_id", ForeignKey("units.id"), primary_key=True, index=True),
)


class Permit(HasId, Base):
    """A presale or spot-sale permit covering a set of units for a period."""

    __tablename__ = "permits"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[PermitKind] = mapped_column(str_enum(PermitKind, "permit_kind"))
    number: Mapped[str] = mapped_column(String(64), unique=True)
    issuer: Mapped[str] = mapped_column(String(200), default="")
    valid_from: Mapped[date]
    valid_until: Mapped[date]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Who granted and revoked it (a regulator's staff id; None: loaded by the platform).
    granted_by: Mapped[uuid.UUID | None]
    revoked_by: Mapped[uuid.UUID | None]
    revoke_document_no: Mapped[str] = mapped_column(String(100), default="", server_default="")
    revoke_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")


permit_change_units = Table(
    "permit_change_units",
    Base.metadata,
    Column("change_id", ForeignKey("permit_changes.id"), primary_key=True),
    Column("unit_id", ForeignKey("units.id"), primary_key=True, index=True),
)

_OPEN_CHANGE_SQL = "status = 'open'"


class PermitChange(HasId, Base):
    """A change of a permit's units or validity (seed 001 5.4.2): while it is open, no
    new sale of the units it touches may start; approving it applies the proposal.

    ``permit_change_units`` holds the whole proposed set of units, not a difference.
    At most one change per permit is open (the partial unique index).
    """

    __tablename__ = "permit_changes"
    __table_args__ = (
        Index(
            "uq_permit_changes_open_permit",
            "permit_id",
            unique=True,
            sqlite_where=text(_OPEN_CHANGE_SQL),
            postgresql_where=text(_OPEN_CHANGE_SQL),
        ),
    )

    permit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("permits.id"), index=True)
    status: Mapped[PermitChangeStatus] = mapped_column(
        str_enum(PermitChangeStatus, "permit_change_status")
    )
    valid_from: Mapped[date]  # proposed
    valid_until: Mapped[date]  # proposed
    document_no: Mapped[str] = mapped_column(String(100))  # the application or decision
    reason: Mapped[str] = mapped_column(String(500), default="")
    started_by: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime]
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str] = mapped_column(String(500), default="")


class UnitRestriction(HasId, Base):
    """A seizure, administrative restriction, property-management designation or mortgage.

    Lifting sets ``lifted_at``; rows are never deleted, so the history stays readable.
    """

    __tablename__ = "unit_restrictions"
    __table_args__ = (Index("ix_unit_restrictions_unit_active", "unit_id", "lifted_at"),)

    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    kind: Mapped[RestrictionKind] = mapped_column(str_enum(RestrictionKind, "restriction_kind"))
    source: Mapped[str] = mapped_column(String(200))  # the court or authority
    document_no: Mapped[str] = mapped_column(String(100), default="")  # e.g. 裁定书 number
    starts_on: Mapped[date]
    ends_on: Mapped[date | None]
    lifted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Who recorded and who lifted it (a regulator's staff id; None: the platform), and the
    # authority and document that lifted it (解封裁定, 解除限制通知...).
    created_by: Mapped[uuid.UUID | None]
    lifted_by: Mapped[uuid.UUID | None]
    lift_authority: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lift_document_no: Mapped[str] = mapped_column(String(100), default="", server_default="")


register_audit_units = Table(
    "register_audit_units",
    Base.metadata,
    Column("audit_id", ForeignKey("register_audit.id"), primary_key=True),
    Column("unit_id", ForeignKey("units.id"), primary_key=True, index=True),
)


class RegisterAuditEntry(HasId, Base):
    """One register action: who (staff id and masked name), what, when, the state before
    and after, the document. Never updated or deleted; ``register_audit_units`` names the
    units it touched, so a unit's history is one indexed join."""

    __tablename__ = "register_audit"
    __table_args__ = (Index("ix_register_audit_project_at", "project_id", "at"),)

    at: Mapped[datetime]
    action: Mapped[RegisterAction] = mapped_column(str_enum(RegisterAction, "register_action"))
    actor_staff_id: Mapped[uuid.UUID | None]  # None: the platform (demo, imports)
    actor_name_masked: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    subject_id: Mapped[uuid.UUID]  # the permit, permit change or restriction
    document_no: Mapped[str] = mapped_column(String(100), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ResaleTitle(HasId, Base):
    """A registered title (不动产权证) for a unit on the resale market.

    The certificate's 校验码 is a credential (it proves one holds the paper), so only its
    keyed hash is kept.
    """

    __tablename__ = "resale_titles"

    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    certificate_no: Mapped[str] = mapped_column(String(100), unique=True)
    check_code_hash: Mapped[str] = mapped_column(String(64))
    registered_on: Mapped[date]
    created_at: Mapped[datetime]

    owners: Mapped[list[TitleOwner]] = relationship(lazy="raise", order_by="TitleOwner.position")


class TitleOwner(HasId, Base):
    """An owner on a title; the ID number is encrypted with a blind index for lookup."""

    __tablename__ = "title_owners"

    title_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resale_titles.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[IdType] = mapped_column(str_enum(IdType, "id_type"), default=IdType.resident_id)
    id_number_encrypted: Mapped[str] = mapped_column(String(200))
    id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    share: Mapped[str] = mapped_column(String(16), default="")  # e.g. "1/2"; empty when sole


class TitleCheck(HasId, Base):
    """One try at a title's check code (校验码): wrong ones are counted per title and day
    (a 6-character code must not be guessable); a right one lets its owner sell for a while."""

    __tablename__ = "title_checks"
    __table_args__ = (Index("ix_title_checks_title_id_checked_at", "title_id", "checked_at"),)

    title_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resale_titles.id"))
    citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime]


# Any change to the register (a permit, a restriction, a unit's survey, a developer's name)
# may change every public building table and the project list (api.core.versions). They
# are rare and each writes an audit entry, which is tracked too.
def _register_scopes(_row: object) -> tuple[str, ...]:
    return (REGISTER,)


for _model in (Company, Project, Building, Unit, Permit, UnitRestriction, RegisterAuditEntry):
    track(_model, _register_scopes)
