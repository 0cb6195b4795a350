"""Survey import (测绘成果, the 户室对照表 of seed 002): a ``wangqian.survey/1`` file becomes a
building's units, all or nothing, with every bad row named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.register.models import (
    Building,
    Unit,
)
from api.register.queries import area_units
from api.register.schemas import UNIT_USES, SurveyFile, SurveyRoom, SurveyRowError

AREA_TOLERANCE = 100  # 0.01 m², the precision surveys are published in


class SurveyInvalidError(DomainError):
    def __init__(self, errors: list[SurveyRowError]) -> None:
        super().__init__(
            "survey_invalid",
            f"测绘成果文件有 {len(errors)} 处错误，未导入任何数据。",
            errors=[msgspec.to_builtins(e) for e in errors],
        )
        self.errors = errors


@dataclass
class _CheckedRoom:
    row: int
    room: SurveyRoom
    areas: dict[str, int] = field(default_factory=dict)


def parse_survey_file(raw: bytes) -> tuple[SurveyFile, list[_CheckedRoom]]:
    """Decode and check a survey file; raises ``SurveyInvalidError`` naming every bad row."""
    try:
        survey = msgspec.json.decode(raw, type=SurveyFile)
    except msgspec.DecodeError as exc:
        error = SurveyRowError(
            row=None, room_no=None, field=None, code="file_invalid", message=f"文件格式错误：{exc}"
        )
        raise SurveyInvalidError([error]) from None
    errors: list[SurveyRowError] = []
    checked: list[_CheckedRoom] = []
    seen: dict[str, int] = {}
    if not survey.rooms:
        errors.append(_row_error(None, None, "rooms", "no_rooms", "文件中没有户室。"))
    for row, raw_room in enumerate(survey.rooms, start=1):
        try:
            room = msgspec.json.decode(raw_room, type=SurveyRoom)
        except msgspec.DecodeError as exc:
            errors.append(_row_error(row, None, None, "row_invalid", f"第 {row} 行格式错误：{exc}"))
            continue
        row_errors, areas = _check_room(row, room)
        errors.extend(row_errors)
        key = room.room_no.strip()
        if key in seen:
            errors.append(
                _row_error(
                    row,
                    key,
                    "room_no",
                    "duplicate_room_no",
                    f"第 {row} 行户室号 {key} 与第 {seen[key]} 行重复。",
                )
            )
        else:
            seen[key] = row
        checked.append(_CheckedRoom(row=row, room=room, areas=areas))
    if errors:
        raise SurveyInvalidError(errors)
    return survey, checked


def _row_error(
    row: int | None, room_no: str | None, field: str | None, code: str, message: str
) -> SurveyRowError:
    return SurveyRowError(row=row, room_no=room_no, field=field, code=code, message=message)


def _check_room(row: int, room: SurveyRoom) -> tuple[list[SurveyRowError], dict[str, int]]:
    errors: list[SurveyRowError] = []
    no = room.room_no.strip()

    def bad(field_name: str, code: str, message: str) -> None:
        errors.append(_row_error(row, no or None, field_name, code, f"第 {row} 行：{message}"))

    if not no or len(no) > 32:
        bad("room_no", "room_no_invalid", "户室号不能为空且不超过 32 个字符。")
    if room.nominal_floor == 0 or room.actual_floor == 0:
        bad("actual_floor", "floor_invalid", "楼层不能为 0（地下层用负数）。")
    if room.floor_span < 1:
        bad("floor_span", "floor_span_invalid", "实际层数至少为 1。")
    if room.use not in UNIT_USES:
        bad("use", "use_invalid", f"房屋用途须为：{'、'.join(UNIT_USES)}。")
    areas: dict[str, int] = {}
    labels = {
        "building_area": "建筑面积",
        "inner_area": "套内面积",
        "shared_area": "分摊面积",
        "balcony_area": "阳台面积",
    }
    for name, label in labels.items():
        value: Decimal = getattr(room, name)
        if not value.is_finite() or value < 0:
            bad(name, "area_negative", f"{label}不能为负数。")
            continue
        try:
            areas[name] = area_units(value)
        except InvalidOperation:
            bad(name, "area_precision", f"{label}最多保留 4 位小数。")
    if len(areas) == len(labels):
        if areas["building_area"] == 0:
            bad("building_area", "area_zero", "建筑面积不能为 0。")
        if (
            abs(areas["building_area"] - areas["inner_area"] - areas["shared_area"])
            > AREA_TOLERANCE
        ):
            bad(
                "building_area",
                "area_inconsistent",
                "建筑面积应等于套内面积与分摊面积之和（误差不超过 0.01 m²）。",
            )
        if areas["balcony_area"] > areas["inner_area"]:
            bad("balcony_area", "area_inconsistent", "阳台面积不能大于套内面积。")
        coefficient = room.shared_coefficient
        if coefficient is not None:
            if not coefficient.is_finite() or coefficient < 0:
                bad("shared_coefficient", "coefficient_invalid", "分摊系数不能为负数。")
            elif abs(areas["inner_area"] * coefficient - areas["shared_area"]) > AREA_TOLERANCE:
                bad(
                    "shared_coefficient",
                    "area_inconsistent",
                    "套内面积 × 分摊系数 应等于分摊面积（误差不超过 0.01 m²）。",
                )
    return errors, areas


async def import_survey(
    session: AsyncSession, raw: bytes, *, now: datetime
) -> tuple[Building, int, int]:
    """Apply a survey file to its building, all or nothing. Returns (building, created, updated)."""
    survey, rooms = parse_survey_file(raw)
    building = await session.scalar(select(Building).where(Building.survey_no == survey.survey_no))
    if building is None:
        raise SurveyInvalidError(
            [
                _row_error(
                    None,
                    None,
                    "survey_no",
                    "unknown_building",
                    f"测量号 {survey.survey_no} 没有对应的已登记楼栋。",
                )
            ]
        )
    existing = {
        unit.room_no: unit
        for unit in await session.scalars(select(Unit).where(Unit.building_id == building.id))
    }
    created = updated = 0
    for checked in rooms:
        room = checked.room
        values = {
            "unit_label": room.unit.strip(),
            "nominal_floor": room.nominal_floor,
            "actual_floor": room.actual_floor,
            "floor_span": room.floor_span,
            "shared_coefficient": ""
            if room.shared_coefficient is None
            else str(room.shared_coefficient),
            "use": room.use,
            "layout": room.layout,
            "structure": room.structure or building.structure,
            "surveyed_at": now,
            **checked.areas,
        }
        unit = existing.get(room.room_no.strip())
        if unit is None:
            session.add(Unit(building_id=building.id, room_no=room.room_no.strip(), **values))
            created += 1
        else:
            for name, value in values.items():
                setattr(unit, name, value)
            updated += 1
    await session.flush()
    return building, created, updated
