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

from datetime import date
from decimal import Decimal
from typing import Literal

import msgspec

from api.core.schemas import RequestBody

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
