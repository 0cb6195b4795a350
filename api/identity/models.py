"""Identity tables: citizens, staff, login sessions, SMS one-time codes, face sessions.

No ID number is stored in plain text: only AES-GCM ciphertext, a keyed blind index and
the masked form. Session tokens and SMS codes are stored as hashes only.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.validators import IdType
from api.db.base import Base, HasId, str_enum


class IdentityLevel(enum.StrEnum):
    none = "none"  # logged in (phone or WeChat), nothing proven
    real_name = "real_name"  # 实名: name + ID number confirmed by the identity provider
    face_verified = "face_verified"  # 人脸核身 passed for that identity


class StaffRole(enum.StrEnum):
    company_admin = "company_admin"
    sales_agent = "sales_agent"
    seal_keeper = "seal_keeper"
    regulator = "regulator"


class StaffApproval(enum.StrEnum):
    """入网审核: staff a company admin adds wait for a regulator before they may log in."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class PrincipalKind(enum.StrEnum):
    citizen = "citizen"
    staff = "staff"


class FaceStatus(enum.StrEnum):
    pending = "pending"
    passed = "passed"
    failed = "failed"
    expired = "expired"


class Citizen(HasId, Base):
    __tablename__ = "citizens"

    # The phone (api.core.keys): a keyed index to find the account, encrypted to send to,
    # masked to show.
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_encrypted: Mapped[str | None] = mapped_column(String(200))
    phone_masked: Mapped[str | None] = mapped_column(String(16))
    wechat_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    wechat_unionid: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    # The identity document proven at real-name (居民身份证 unless said otherwise).
    id_type: Mapped[IdType] = mapped_column(str_enum(IdType, "id_type"), default=IdType.resident_id)
    id_number_encrypted: Mapped[str | None] = mapped_column(String(200))
    # The document claimed at real-name (keyed index); it reserves nothing.
    id_number_claim_index: Mapped[str | None] = mapped_column(String(64))
    # One real-name identity belongs to one account: set once a face check passed for it.
    id_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    identity_level: Mapped[IdentityLevel] = mapped_column(
        str_enum(IdentityLevel, "identity_level"), default=IdentityLevel.none
    )
    real_name_at: Mapped[datetime | None]
    face_verified_at: Mapped[datetime | None]
    # Separate consent to the notice on sensitive personal information (api.identity.consent):
    # which version of the notice, and when.
    pi_consent_version: Mapped[str | None] = mapped_column(String(16))
    pi_consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


staff_projects = Table(
    "staff_projects",
    Base.metadata,
    Column("staff_id", ForeignKey("staff_members.id"), primary_key=True),
    Column("project_id", ForeignKey("projects.id"), primary_key=True, index=True),
)


class StaffMember(HasId, Base):
    """A company admin, sales agent or seal keeper of a company, or a regulator (no company)."""

    __tablename__ = "staff_members"

    # The login phone, as a citizen's (``Citizen.phone_index``).
    phone_index: Mapped[str] = mapped_column(String(64), unique=True)
    phone_encrypted: Mapped[str] = mapped_column(String(200))
    phone_masked: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole, "staff_role"))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"), index=True)
    disabled_at: Mapped[datetime | None]
    # TOTP: the secret is encrypted; a pending one waits for its first code.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(200))
    totp_pending_encrypted: Mapped[str | None] = mapped_column(String(200))
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Wrong TOTP codes in a row, counted under the SMS codes' policy (codes.OTP_POLICY).
    totp_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    totp_last_failure_at: Mapped[datetime | None]
    totp_locked_until: Mapped[datetime | None]
    # When the phone's owner accepted this staff account (a code to that phone, with
    # "log in as staff"): before that the phone logs in as the citizen it may belong to.
    phone_confirmed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Staff the platform creates (admins, regulators, the demo's) start approved; agents
    # and seal keepers a company admin adds start pending until a regulator decides.
    approval: Mapped[StaffApproval] = mapped_column(
        str_enum(StaffApproval, "staff_approval"),
        default=StaffApproval.approved,
        server_default=StaffApproval.approved.value,
    )
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    review_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")


class AuthSession(HasId, Base):
    """A login. The bearer token is random; only its SHA-256 is kept."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[PrincipalKind] = mapped_column(str_enum(PrincipalKind, "principal_kind"))
    citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # absolute expiry
    revoked_at: Mapped[datetime | None]


class OtpChallengeRecord(HasId, Base):
    """One issued SMS code (signing.otp.OtpChallenge as a row): only its keyed hash."""

    __tablename__ = "otp_challenges"
    __table_args__ = (Index("ix_otp_challenges_binding", "purpose", "subject", "created_at"),)

    challenge_id: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(100))
    # A login code's subject is the phone's keyed index too: no number in clear here.
    subject: Mapped[str] = mapped_column(String(200))
    phone_index: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]


class SmsSend(HasId, Base):
    """One code sent to a phone: the per-phone send history the quotas count."""

    __tablename__ = "sms_sends"
    __table_args__ = (Index("ix_sms_sends_phone_sent_at", "phone_index", "sent_at"),)

    phone_index: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime]
    # Quotas count per purpose: anonymous login sends never spend a party's signing codes.
    purpose: Mapped[str] = mapped_column(String(32), default="login", server_default="login")


class FaceSession(HasId, Base):
    """A face check started for a citizen; the provider's token is used to fetch the result
    once (then the session is final and the token is never sent again)."""

    __tablename__ = "face_sessions"

    citizen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("citizens.id"), index=True)
    # The provider's token: Tencent FaceID BizToken, WeChat verify_id (up to 256).
    biz_token: Mapped[str] = mapped_column(String(300), unique=True)
    url: Mapped[str] = mapped_column(String(500))  # the H5 page; "" for WeChat's SDK
    # Our serial number of the check where the provider wants it back (WeChat out_seq_no).
    reference: Mapped[str] = mapped_column(String(64), default="")
    # What the client does with the token: tencent_faceid or wechat_facial_verify.
    sdk: Mapped[str] = mapped_column(String(32), default="tencent_faceid")
    status: Mapped[FaceStatus] = mapped_column(
        str_enum(FaceStatus, "face_status"), default=FaceStatus.pending
    )
    reason: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class WeChatSubscription(HasId, Base):
    """A WeChat user's consent to subscribe messages (订阅消息) of one template.

    WeChat's one-time subscriptions let one message through per "accept" the user taps in
    the mini program, so consents are counted and each message sent uses one. Kept by
    openid, not by account: the consent is WeChat's, and it follows the WeChat login when
    two accounts become one.
    """

    __tablename__ = "wechat_subscriptions"
    __table_args__ = (UniqueConstraint("openid", "template_id"),)

    openid: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str] = mapped_column(String(64))
    remaining: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
