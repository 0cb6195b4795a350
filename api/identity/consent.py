"""Separate consent to the processing of sensitive personal information (个人信息保护法
第二十九条: sensitive data, such as an ID number and a face, needs its own consent after a
notice of what is collected, why and for how long). The notice is kept here, versioned, so
a recorded consent names the exact text the person agreed to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.identity import schemas
from api.identity.models import Citizen
from api.identity.principal import Principal
from api.identity.profile import caller_citizen, profile

PI_NOTICE_VERSION = "2026.1"

PI_NOTICE = schemas.PiNotice(
    version=PI_NOTICE_VERSION,
    title="个人信息收集与使用告知",
    items=[
        schemas.PiNoticeItem(
            heading="收集什么",
            text="您的姓名、证件类型和证件号码（实名认证），以及人脸核身时由核身服务商采集的"
            "人脸图像比对结果。人脸图像由核身服务商处理，本平台只保存核身是否通过及其时间。",
        ),
        schemas.PiNoticeItem(
            heading="为什么收集",
            text="确认签署合同的是您本人，并将您的身份写入每次签署专用的数字证书和签署证据，"
            "以保证电子合同的法律效力。不用于与网签无关的用途。",
        ),
        schemas.PiNoticeItem(
            heading="保存多久",
            text="证件号码加密保存，页面和短信中只显示部分号码；与合同有关的身份信息随合同档案"
            "保存至合同履行完毕后 30 年（依法须保存的期限）；未签成的订单删除时一并清除。",
        ),
        schemas.PiNoticeItem(
            heading="您的权利",
            text="您可以查阅、复制您的个人信息，要求更正；不同意本告知的，无法在线实名和签约，"
            "可到交易中心窗口办理。",
        ),
    ],
)


def require_pi_consent(citizen: Citizen) -> None:
    """The ID number and the face are collected only after the separate consent: the notice
    itself says that without it nothing is verified online."""
    if citizen.pi_consent_at is None:
        raise DomainError(
            "pi_consent_required",
            "请先阅读并同意《个人信息收集与使用告知》，再进行实名认证和人脸核身。",
            current_version=PI_NOTICE_VERSION,
        )


def pi_notice() -> schemas.PiNotice:
    return PI_NOTICE


async def give_pi_consent(
    session: AsyncSession, principal: Principal, *, version: str, now: datetime
) -> schemas.Me:
    """Record that the caller agreed to this version of the notice, and when (the first
    agreement to a version stands; agreeing again to the same version changes nothing)."""
    if version != PI_NOTICE_VERSION:
        raise DomainError(
            "pi_notice_outdated",
            "个人信息告知已更新，请重新阅读后再同意。",
            current_version=PI_NOTICE_VERSION,
        )
    citizen = await caller_citizen(session, principal)
    if citizen.pi_consent_version != version or citizen.pi_consent_at is None:
        citizen.pi_consent_version = version
        citizen.pi_consent_at = now
        await session.flush()
    return await profile(session, principal)
