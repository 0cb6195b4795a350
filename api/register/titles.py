"""Resale titles (不动产权证): checking a title by its number and check code (房源验证,
seed 004), with wrong codes counted, and what a resale order needs to know of a title and
its owners."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import SHANGHAI, business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import IdType
from api.db.engine import commit_and_raise
from api.register.models import ResaleTitle, TitleCheck, TitleOwner
from api.register.queries import TITLE_CHECK_CODE

TITLE_OWNER_ID_FIELD = "title_owner.id_number"
# A check code is 6 characters: 5 wrong tries a day per title, whoever makes them.
WRONG_CODES_PER_DAY = 5
# How long a passed check lets its owner create an order for the title.
CHECK_VALID_FOR = timedelta(minutes=30)


@dataclass(frozen=True)
class TitleOwnerFacts:
    position: int
    name: str
    id_type: IdType
    id_number_index: str
    id_number_masked: str
    share: str


@dataclass(frozen=True)
class TitleFacts:
    id: uuid.UUID
    certificate_no: str
    unit_id: uuid.UUID
    registered_on: date
    owners: list[TitleOwnerFacts]


def normalize_certificate_no(raw: str) -> str:
    return "".join(raw.split())


def _today_start(now: datetime) -> datetime:
    return datetime.combine(business_date(now), time.min, tzinfo=SHANGHAI)


async def _wrong_today(session: AsyncSession, title_id: uuid.UUID, now: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                TitleCheck.title_id == title_id,
                TitleCheck.passed.is_(False),
                TitleCheck.checked_at >= _today_start(now),
            )
        )
        or 0
    )


async def check_title(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    certificate_no: str,
    check_code: str,
    citizen_id: uuid.UUID,
    now: datetime,
) -> TitleFacts:
    """The title these number and check code open. A wrong code is kept (committed) and
    counted before the refusal; after 5 in a day the title is locked until midnight
    (Asia/Shanghai), for the right code too. An unknown number is refused like a wrong
    code, so the answers tell nobody which titles exist."""
    wrong = DomainError("title_check_failed", "不动产权证号或校验码不正确，请核对产权证书。")
    title = await session.scalar(
        select(ResaleTitle).where(
            ResaleTitle.certificate_no == normalize_certificate_no(certificate_no)
        )
    )
    if title is None:
        raise wrong
    failures = await _wrong_today(session, title.id, now)
    if failures >= WRONG_CODES_PER_DAY:
        tomorrow = _today_start(now) + timedelta(days=1)
        raise DomainError(
            "title_check_locked",
            "校验码错误次数过多，该产权证今日已锁定，请明日再试或到交易中心窗口办理。",
            retry_after=max(1, int((tomorrow - now).total_seconds())),
        )
    passed = keys.credential_matches(TITLE_CHECK_CODE, check_code, title.check_code_hash)
    session.add(TitleCheck(title_id=title.id, citizen_id=citizen_id, passed=passed, checked_at=now))
    await session.flush()
    if not passed:
        wrong.extra["remaining_tries"] = WRONG_CODES_PER_DAY - failures - 1
        await commit_and_raise(session, wrong)
    return await title_facts(session, title.id)


async def title_facts(session: AsyncSession, title_id: uuid.UUID) -> TitleFacts:
    title = await session.get(ResaleTitle, title_id)
    if title is None:
        raise DomainError.not_found("不动产权证")
    owners = await session.scalars(
        select(TitleOwner).where(TitleOwner.title_id == title_id).order_by(TitleOwner.position)
    )
    return TitleFacts(
        id=title.id,
        certificate_no=title.certificate_no,
        unit_id=title.unit_id,
        registered_on=title.registered_on,
        owners=[
            TitleOwnerFacts(
                owner.position,
                owner.name,
                owner.id_type,
                owner.id_number_index,
                owner.id_number_masked,
                owner.share,
            )
            for owner in owners
        ],
    )


async def checked_recently(
    session: AsyncSession, title_id: uuid.UUID, citizen_id: uuid.UUID, now: datetime
) -> bool:
    """Whether this citizen passed the title's check in the last half hour."""
    return (
        await session.scalar(
            select(TitleCheck.id).where(
                TitleCheck.title_id == title_id,
                TitleCheck.citizen_id == citizen_id,
                TitleCheck.passed.is_(True),
                TitleCheck.checked_at >= now - CHECK_VALID_FOR,
            )
        )
        is not None
    )


async def owner_id_numbers(
    session: AsyncSession, keys: ServiceKeys, title_id: uuid.UUID
) -> list[str]:
    """The owners' document numbers in clear, in their order, to name them as sellers."""
    rows = await session.scalars(
        select(TitleOwner.id_number_encrypted)
        .where(TitleOwner.title_id == title_id)
        .order_by(TitleOwner.position)
    )
    return [keys.pii.decrypt(raw, field=TITLE_OWNER_ID_FIELD) for raw in rows]
