"""Identity request and response bodies. Phones and ID numbers only ever leave masked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from api.core.schemas import RequestBody, ResponseBody
from api.core.validators import IdType
from api.identity.models import (
    FaceStatus,
    IdentityLevel,
    PrincipalKind,
    StaffApproval,
    StaffRole,
)

Phone = Annotated[str, msgspec.Meta(max_length=32, description="中国大陆手机号")]
Code = Annotated[str, msgspec.Meta(max_length=16)]


# ------------------------------------------------------------------ requests


class WeChatLogin(RequestBody):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SmsSend(RequestBody):
    phone: Phone


class SmsVerify(RequestBody):
    phone: Phone
    code: Code
    # Needed once a seal keeper or regulator has enrolled TOTP.
    totp_code: Code | None = None
    # Which account to log into; by default staff when the phone is a staff member's.
    kind: PrincipalKind | None = None


class BindPhone(RequestBody):
    phone: Phone
    code: Code


class RealName(RequestBody):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    id_type: IdType = IdType.resident_id


class PiConsent(RequestBody):
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class PiNoticeItem(ResponseBody):
    heading: str
    text: str


class PiNotice(ResponseBody):
    """The notice shown before the ID number and the face are collected."""

    version: str
    title: str
    items: list[PiNoticeItem]


class TotpConfirm(RequestBody):
    code: Code


class NewStaffMember(RequestBody):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    phone: Phone
    role: StaffRole
    project_ids: list[uuid.UUID] = msgspec.field(default_factory=list)


class StaffProjects(RequestBody):
    project_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=200)]


# ------------------------------------------------------------------ answers


class CodeSent(ResponseBody):
    """The same answer whether or not the phone has an account."""

    sent: bool
    expires_in: int
    resend_after: int


class LoginAnswer(ResponseBody):
    token: str
    kind: PrincipalKind
    expires_at: datetime  # absolute expiry; idle expiry comes earlier without requests
    idle_minutes: int
    phone_bound: bool = True


class CompanyRef(ResponseBody):
    id: uuid.UUID
    name: str


class ProjectRef(ResponseBody):
    id: uuid.UUID
    name: str


class Me(ResponseBody):
    kind: PrincipalKind
    id: uuid.UUID
    roles: list[str]
    phone_masked: str | None
    name: str | None = None
    id_number_masked: str | None = None
    id_type: IdType | None = None  # the identity document proven at real name
    identity_level: IdentityLevel | None = None
    wechat_bound: bool | None = None
    company: CompanyRef | None = None
    projects: list[ProjectRef] = msgspec.field(default_factory=list)
    totp_enabled: bool | None = None
    disabled: bool | None = None
    # The separate consent to the personal-information notice (citizens): version and time.
    pi_consent_version: str | None = None
    pi_consent_at: datetime | None = None


class TotpEnrollment(ResponseBody):
    secret: str
    uri: str
    qr_png_base64: str


class TotpEnabled(ResponseBody):
    totp_enabled: bool
    enabled_at: datetime


class FaceSessionAnswer(ResponseBody):
    id: uuid.UUID
    status: FaceStatus
    url: str | None  # the provider's H5 page (Tencent FaceID), while pending
    # While pending, what the mini program hands to the provider's SDK: the BizToken
    # (Tencent FaceID's mini program SDK) or the verify_id (wx.requestFacialVerify).
    token: str | None
    sdk: str
    expires_at: datetime
    identity_level: IdentityLevel
    reason: str = ""


class StaffMemberAnswer(ResponseBody):
    id: uuid.UUID
    name: str
    phone_masked: str
    role: StaffRole
    company_id: uuid.UUID | None
    projects: list[ProjectRef]
    disabled: bool
    totp_enabled: bool
    # 入网审核: pending until a regulator approves; only approved staff may log in.
    approval: StaffApproval
    review_reason: str
    company_name: str | None = None  # in the regulators' review lists


class StaffReview(RequestBody):
    """Approving needs no reason; rejecting does."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class StaffList(ResponseBody):
    members: list[StaffMemberAnswer]


class SubscriptionResults(RequestBody):
    """What wx.requestSubscribeMessage answered in the mini program: template id ->
    "accept", "reject", "ban" (the user turned the template off) or "filter"."""

    results: dict[str, str]


class Subscription(ResponseBody):
    template_id: str  # the mini program's own (pass it to wx.requestSubscribeMessage)
    key: str  # which of our messages it is (contract_signed, down_payment_arrived, ...)
    title: str
    remaining: int  # messages the citizen has allowed and not yet received


class Subscriptions(ResponseBody):
    subscriptions: list[Subscription]
