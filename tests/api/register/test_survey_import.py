"""Survey import (户室对照表): all or nothing, every offending row named."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.problems import STATUS_BY_CODE
from api.register.models import Unit
from api.register.survey import SurveyInvalidError, import_survey
from tests.api.world import make_world, room, survey


async def _unit_count(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Unit)) or 0


async def test_good_file_creates_units_with_exact_areas(
    session: AsyncSession, clock: MovableClock
) -> None:
    world = await make_world(session, clock.now(), floors=2, per_floor=2)
    units = list(await session.scalars(select(Unit).order_by(Unit.room_no)))
    assert [u.room_no for u in units] == ["101", "102", "201", "202"]
    first = units[0]
    assert (first.building_area, first.inner_area, first.shared_area, first.balcony_area) == (
        891200,
        723000,
        168200,
        32000,
    )
    assert first.shared_coefficient == "0.232642"
    assert first.building_id == world.building_id


async def test_seed_rows_with_four_decimal_areas_are_accepted(
    session: AsyncSession, clock: MovableClock
) -> None:
    await make_world(session, clock.now(), floors=1, per_floor=1)
    # Rows as published in the survey of seed 002 (basement shop, numbers as JSON numbers).
    raw = survey(
        "SY-T-1",
        [
            room(
                "-101",
                -1,
                building_area=3490.9,
                inner_area=3210.55,
                shared_area=280.35,
                balcony_area=0,
                shared_coefficient="0.087322",
                use="商业",
            ),
            room(
                "103",
                1,
                building_area="14.7412",
                inner_area="12.1",
                shared_area="2.6412",
                balcony_area="0",
                shared_coefficient=None,
            ),
        ],
    )
    _, created, updated = await import_survey(session, raw, now=clock.now())
    assert (created, updated) == (2, 0)
    shop = await session.scalar(select(Unit).where(Unit.room_no == "-101"))
    assert shop is not None and shop.building_area == 34909000 and shop.actual_floor == -1


async def test_reimport_updates_existing_rooms(session: AsyncSession, clock: MovableClock) -> None:
    await make_world(session, clock.now(), floors=1, per_floor=2)
    measured = survey(
        "SY-T-1",
        [
            room(
                "101",
                1,
                building_area="90.00",
                inner_area="73.00",
                shared_area="17.00",
                shared_coefficient=None,
            )
        ],
        stage="measured",
    )
    _, created, updated = await import_survey(session, measured, now=clock.now())
    assert (created, updated) == (0, 1)
    unit = await session.scalar(select(Unit).where(Unit.room_no == "101"))
    assert unit is not None and unit.building_area == 900000
    assert await _unit_count(session) == 2


async def test_bad_file_names_every_offending_row_and_writes_nothing(
    session: AsyncSession, clock: MovableClock
) -> None:
    await make_world(session, clock.now(), floors=1, per_floor=1)
    await session.commit()
    before = await _unit_count(session)
    raw = survey(
        "SY-T-1",
        [
            room("201", 2),  # fine, but must not be written either
            room("202", 2, inner_area="-1.00"),  # negative
            room("203", 2, building_area="100.00"),  # 100 != 72.30 + 16.82
            room("201", 2),  # duplicate of row 1
            room("204", 2, shared_area="16.00", building_area="88.30"),  # coefficient mismatch
            room("205", 2, building_area="89.123456"),  # too precise
            room("206", 2, use="别墅"),  # unknown use
            room("207", 0),  # floor 0 does not exist
            {"room_no": "208"},  # missing fields
        ],
    )
    with pytest.raises(SurveyInvalidError) as caught:
        await import_survey(session, raw, now=clock.now())
    await session.rollback()
    found = {(e.row, e.code) for e in caught.value.errors}
    assert found == {
        (2, "area_negative"),
        (3, "area_inconsistent"),
        (4, "duplicate_room_no"),
        (5, "area_inconsistent"),
        (6, "area_precision"),
        (7, "use_invalid"),
        (8, "floor_invalid"),
        (9, "row_invalid"),
    }
    duplicate = next(e for e in caught.value.errors if e.code == "duplicate_room_no")
    assert duplicate.room_no == "201" and "第 1 行" in duplicate.message
    assert STATUS_BY_CODE[caught.value.code] == 422 and caught.value.code == "survey_invalid"
    assert await _unit_count(session) == before


async def test_unknown_building_is_refused(session: AsyncSession, clock: MovableClock) -> None:
    with pytest.raises(SurveyInvalidError) as caught:
        await import_survey(session, survey("SY-NOPE", [room("101", 1)]), now=clock.now())
    assert [e.code for e in caught.value.errors] == ["unknown_building"]
    assert "SY-NOPE" in caught.value.errors[0].message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "file_invalid"),
        (
            b'{"format": "other/1", "survey_no": "x", "surveyed_on": "2026-01-01", "rooms": []}',
            "file_invalid",
        ),
        (survey("SY-T-1", []), "no_rooms"),
        (survey("SY-T-1", [room("101", 1)], extra_field=1), "file_invalid"),
    ],
)
async def test_malformed_files(
    session: AsyncSession, clock: MovableClock, raw: bytes, code: str
) -> None:
    with pytest.raises(SurveyInvalidError) as caught:
        await import_survey(session, raw, now=clock.now())
    assert caught.value.errors[0].code == code
