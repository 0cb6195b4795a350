"""Staff: company admins add and disable sales agents and seal keepers and assign projects;
regulators approve or reject the staff admins add (入网审核) before they may log in; TOTP
enrollment and checks; what other contexts may know of a staff member.
"""

from __future__ import annotations

import math
import uuid
from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import as_utc
from api.core.errors import DomainError
from api.core.keys import STAFF_PHONE, ServiceKeys
from api.core.validators import normalize_phone
from api.db.engine import commit_and_raise
from api.identity import schemas
from api.identity.codes import OTP_POLICY
from api.identity.models import (
    AuthSession,
    StaffApproval,
    StaffMember,
    StaffRole,
    staff_projects,
)
from api.identity.principal import Principal
from api.identity.profile import caller_staff, project_refs
from api.register.queries import get_company, get_projects
from signing import totp

TOTP_FIELD = "staff.totp_secret"


# Roles a company admin may create; regulators and admins are made by the platform.
ADMIN_CREATES = frozenset({StaffRole.sales_agent, StaffRole.seal_keeper})


async def check_totp(
    session: AsyncSession, keys: ServiceKeys, staff: StaffMember, code: str, now: datetime
) -> None:
    """A TOTP code under the SMS codes' policy: the 5th wrong code in a row locks the
    authenticator for 30 minutes (the right code too, as for SMS codes); failures are
    forgotten after a right code, once a lock has run out, or 30 minutes after the last
    wrong one. Wrong tries are committed before the refusal is raised."""
    assert staff.totp_secret_encrypted is not None
    # The row lock (PostgreSQL; SQLite writers are serialised) makes concurrent guesses
    # count one after another: none can slip past the 5th.
    await session.refresh(staff, with_for_update=True)
    policy = OTP_POLICY
    locked_until = as_utc(staff.totp_locked_until) if staff.totp_locked_until else None
    if locked_until is not None and now < locked_until:
        await commit_and_raise(session, _totp_locked(locked_until, now))
    secret = keys.pii.decrypt(staff.totp_secret_encrypted, field=TOTP_FIELD)
    try:
        step = totp.verify(secret, code, now, last_step=staff.totp_last_step)
    except totp.TotpError as refused:
        last = as_utc(staff.totp_last_failure_at) if staff.totp_last_failure_at else None
        stale = locked_until is not None or (
            last is not None and now - last >= policy.lock_duration
        )
        failures = (0 if stale else staff.totp_failures) + 1
        staff.totp_failures = failures
        staff.totp_last_failure_at = now
        staff.totp_locked_until = None
        if failures >= policy.max_failures:
            staff.totp_locked_until = now + policy.lock_duration
            await commit_and_raise(session, _totp_locked(staff.totp_locked_until, now))
        await commit_and_raise(
            session,
            DomainError(
                refused.code, refused.detail, remaining_tries=policy.max_failures - failures
            ),
        )
    # Conditional: two requests with the same code cannot both move past the last step.
    result = await session.execute(
        update(StaffMember)
        .where(
            StaffMember.id == staff.id,
            (StaffMember.totp_last_step.is_(None)) | (StaffMember.totp_last_step < step),
        )
        .values(
            totp_last_step=step,
            totp_failures=0,
            totp_last_failure_at=None,
            totp_locked_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        replayed = totp.TotpReplayedError()
        await commit_and_raise(session, DomainError(replayed.code, replayed.detail))
    await session.refresh(staff)


def _totp_locked(locked_until: datetime, now: datetime) -> DomainError:
    retry_after = max(1, math.ceil((locked_until - now).total_seconds()))
    return DomainError(
        "totp_locked",
        f"动态口令错误次数过多，请 {math.ceil(retry_after / 60)} 分钟后再试。",
        unlock_at=locked_until.isoformat(),
        retry_after=retry_after,
    )


async def start_totp(
    session: AsyncSession, keys: ServiceKeys, principal: Principal
) -> schemas.TotpEnrollment:
    staff = await caller_staff(session, principal)
    if staff.totp_secret_encrypted:
        raise DomainError("totp_already_enabled", "已绑定身份验证器。")
    enrollment = totp.enroll(staff.phone_masked)
    staff.totp_pending_encrypted = keys.pii.encrypt(enrollment.secret, field=TOTP_FIELD)
    await session.flush()
    return schemas.TotpEnrollment(
        secret=enrollment.secret,
        uri=enrollment.uri,
        qr_png_base64=b64encode(enrollment.qr_png).decode(),
    )


async def confirm_totp(
    session: AsyncSession, keys: ServiceKeys, principal: Principal, *, code: str, now: datetime
) -> schemas.TotpEnabled:
    staff = await caller_staff(session, principal)
    if staff.totp_secret_encrypted:
        raise DomainError("totp_already_enabled", "已绑定身份验证器。")
    if not staff.totp_pending_encrypted:
        raise DomainError("totp_not_started", "请先获取身份验证器的绑定二维码。")
    secret = keys.pii.decrypt(staff.totp_pending_encrypted, field=TOTP_FIELD)
    try:
        step = totp.verify(secret, code, now, last_step=None)
    except totp.TotpError as refused:
        # Its own code: a wrong code while enrolling is a bad request (400), not a failed
        # login (401, which tells clients to log in again).
        raise DomainError("totp_confirm_invalid", refused.detail) from None
    staff.totp_secret_encrypted = staff.totp_pending_encrypted
    staff.totp_pending_encrypted = None
    staff.totp_last_step = step
    staff.totp_enabled_at = now
    await session.flush()
    return schemas.TotpEnabled(totp_enabled=True, enabled_at=now)


async def _staff_answer(
    session: AsyncSession, staff: StaffMember, *, with_company: bool = False
) -> schemas.StaffMemberAnswer:
    company = (
        await get_company(session, staff.company_id) if with_company and staff.company_id else None
    )
    return schemas.StaffMemberAnswer(
        id=staff.id,
        name=staff.name,
        phone_masked=staff.phone_masked,
        role=staff.role,
        company_id=staff.company_id,
        projects=await project_refs(session, staff.id),
        disabled=staff.disabled_at is not None,
        totp_enabled=staff.totp_secret_encrypted is not None,
        approval=staff.approval,
        review_reason=staff.review_reason,
        company_name=company.name if company else None,
    )


async def _set_projects(
    session: AsyncSession, staff: StaffMember, project_ids: list[uuid.UUID]
) -> None:
    wanted = list(dict.fromkeys(project_ids))
    if wanted and staff.role is not StaffRole.sales_agent:
        raise DomainError("projects_for_agents_only", "只有销售人员可以分配项目。")
    projects = await get_projects(session, wanted)
    if len(projects) != len(wanted) or any(p.company_id != staff.company_id for p in projects):
        raise DomainError("project_not_in_company", "只能分配本公司的项目。")
    await session.execute(delete(staff_projects).where(staff_projects.c.staff_id == staff.id))
    if wanted:
        await session.execute(
            insert(staff_projects), [{"staff_id": staff.id, "project_id": p} for p in wanted]
        )


async def create_staff_member(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    name: str,
    phone: str,
    role: StaffRole,
    company_id: uuid.UUID | None,
    now: datetime,
    project_ids: list[uuid.UUID] | None = None,
    approval: StaffApproval = StaffApproval.approved,
    phone_confirmed: bool = True,
) -> StaffMember:
    """Any staff member (the demo and the platform use this; admins go through add_member).
    The platform vouches for whom it creates: approved and its phone confirmed unless told
    otherwise."""
    phone = normalize_phone(phone)
    if (role is StaffRole.regulator) != (company_id is None):
        raise DomainError("staff_company_invalid", "监管人员不属于企业，其他工作人员必须属于企业。")
    protected = keys.protect_phone(phone, field=STAFF_PHONE)
    taken = select(StaffMember.id).where(StaffMember.phone_index == protected.index)
    if await session.scalar(taken):
        raise DomainError("staff_phone_taken", "该手机号已是工作人员账号。")
    staff = StaffMember(
        name=name.strip(),
        phone_index=protected.index,
        phone_encrypted=protected.encrypted,
        phone_masked=protected.masked,
        role=role,
        company_id=company_id,
        created_at=now,
        approval=approval,
        review_reason="",
        phone_confirmed_at=now if phone_confirmed else None,
    )
    session.add(staff)
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("staff_phone_taken", "该手机号已是工作人员账号。") from None
    if project_ids:
        await _set_projects(session, staff, project_ids)
    return staff


async def add_member(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    data: schemas.NewStaffMember,
    *,
    now: datetime,
) -> schemas.StaffMemberAnswer:
    """The member waits for a regulator (``pending``) and cannot log in until approved, and
    the phone is no staff login until its owner confirms it with a code (a login that asks
    for the staff account). A member a regulator rejected may be submitted again,
    corrected, with the same phone."""
    if data.role not in ADMIN_CREATES:
        raise DomainError("role_not_allowed", "企业管理员只能添加销售人员和印章授权人。")
    rejected = await session.scalar(
        select(StaffMember).where(
            StaffMember.phone_index == keys.phone_index(normalize_phone(data.phone)),
            StaffMember.company_id == principal.company_id,
            StaffMember.approval == StaffApproval.rejected,
        )
    )
    if rejected is not None:
        rejected.name, rejected.role = data.name.strip(), data.role
        rejected.approval = StaffApproval.pending
        rejected.reviewed_by = rejected.reviewed_at = None
        rejected.review_reason = ""
        await _set_projects(session, rejected, data.project_ids)
        await session.flush()
        return await _staff_answer(session, rejected)
    staff = await create_staff_member(
        session,
        keys,
        name=data.name,
        phone=data.phone,
        role=data.role,
        company_id=principal.company_id,
        now=now,
        project_ids=data.project_ids,
        approval=StaffApproval.pending,
        # An admin can type anyone's phone: its owner accepts at a staff login of their own.
        phone_confirmed=False,
    )
    return await _staff_answer(session, staff)


async def pending_members(session: AsyncSession) -> schemas.StaffList:
    """What regulators have to review: members of every company waiting for approval,
    oldest first (disabled ones need no review)."""
    rows = await session.scalars(
        select(StaffMember)
        .where(StaffMember.approval == StaffApproval.pending, StaffMember.disabled_at.is_(None))
        .order_by(StaffMember.created_at, StaffMember.id)
    )
    return schemas.StaffList(
        members=[await _staff_answer(session, s, with_company=True) for s in rows]
    )


async def review_member(
    session: AsyncSession,
    principal: Principal,
    staff_id: uuid.UUID,
    *,
    approve: bool,
    reason: str,
    now: datetime,
) -> schemas.StaffMemberAnswer:
    """A regulator approves (the member may log in from now) or rejects with a reason."""
    staff = await session.scalar(
        select(StaffMember)
        .where(StaffMember.id == staff_id)
        .with_for_update()  # two regulators deciding at once: the second is refused
        .execution_options(populate_existing=True)
    )
    if staff is None or staff.company_id is None:
        raise DomainError.not_found("工作人员")
    if staff.approval is not StaffApproval.pending:
        raise DomainError(
            "staff_already_reviewed", "该工作人员已审核。", approval=staff.approval.value
        )
    if not approve and not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    staff.approval = StaffApproval.approved if approve else StaffApproval.rejected
    staff.reviewed_by = principal.staff_id
    staff.reviewed_at = now
    staff.review_reason = reason.strip()
    await session.flush()
    return await _staff_answer(session, staff, with_company=True)


async def _company_member(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID
) -> StaffMember:
    staff = await session.get(StaffMember, staff_id)
    if staff is None or staff.company_id != principal.company_id:
        raise DomainError.not_found("工作人员")
    return staff


async def list_members(session: AsyncSession, principal: Principal) -> schemas.StaffList:
    rows = await session.scalars(
        select(StaffMember)
        .where(StaffMember.company_id == principal.company_id)
        .order_by(StaffMember.created_at, StaffMember.id)
    )
    return schemas.StaffList(members=[await _staff_answer(session, s) for s in rows])


async def disable_member(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID, *, now: datetime
) -> schemas.StaffMemberAnswer:
    staff = await _company_member(session, principal, staff_id)
    if staff.id == principal.staff_id:
        raise DomainError("cannot_disable_self", "不能停用自己的账号。")
    if staff.disabled_at is None:
        staff.disabled_at = now
        await session.execute(
            update(AuthSession)
            .where(AuthSession.staff_id == staff.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await session.flush()
    return await _staff_answer(session, staff)


async def assign_projects(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID, project_ids: list[uuid.UUID]
) -> schemas.StaffMemberAnswer:
    staff = await _company_member(session, principal, staff_id)
    await _set_projects(session, staff, project_ids)
    return await _staff_answer(session, staff)


async def existing_staff_phones(
    session: AsyncSession, keys: ServiceKeys, phones: list[str]
) -> set[str]:
    """Which of these phones already belong to a staff member (for idempotent loaders)."""
    by_index = {keys.phone_index(phone): phone for phone in phones}
    found = await session.scalars(
        select(StaffMember.phone_index).where(StaffMember.phone_index.in_(by_index))
    )
    return {by_index[index] for index in found}


async def staff_project_ids(session: AsyncSession, staff_id: uuid.UUID) -> list[uuid.UUID]:
    """The projects a sales agent is assigned (for the contracts context)."""
    return list(
        await session.scalars(
            select(staff_projects.c.project_id).where(staff_projects.c.staff_id == staff_id)
        )
    )


@dataclass(frozen=True)
class StaffIdentity:
    id: uuid.UUID
    name: str
    phone_encrypted: str
    role: StaffRole
    company_id: uuid.UUID | None
    totp_enabled: bool

    def phone(self, keys: ServiceKeys) -> str:
        """The login phone, where a code is sent (the seal's)."""
        return keys.phone(self.phone_encrypted, field=STAFF_PHONE)


def _identity(staff: StaffMember) -> StaffIdentity:
    return StaffIdentity(
        id=staff.id,
        name=staff.name,
        phone_encrypted=staff.phone_encrypted,
        role=staff.role,
        company_id=staff.company_id,
        totp_enabled=staff.totp_secret_encrypted is not None,
    )


async def staff_identity(session: AsyncSession, staff_id: uuid.UUID) -> StaffIdentity | None:
    staff = await session.get(StaffMember, staff_id)
    return _identity(staff) if staff is not None else None


async def check_staff_totp(
    session: AsyncSession, keys: ServiceKeys, staff_id: uuid.UUID, code: str | None, now: datetime
) -> None:
    """A staff member enrolled in TOTP proves it again (sealing); a no-op when not enrolled."""
    staff = await session.get(StaffMember, staff_id)
    if staff is None or not staff.totp_secret_encrypted:
        return
    if not code:
        raise DomainError("totp_required", "请输入身份验证器中的动态口令。")
    await check_totp(session, keys, staff, code, now)


async def staff_by_phone(
    session: AsyncSession, keys: ServiceKeys, phone: str
) -> StaffIdentity | None:
    """A staff member by login phone (the demo acts as its sales agent)."""
    staff_id = await session.scalar(
        select(StaffMember.id).where(StaffMember.phone_index == keys.phone_index(phone))
    )
    return await staff_identity(session, staff_id) if staff_id is not None else None


async def company_staff(
    session: AsyncSession, company_id: uuid.UUID, role: StaffRole
) -> list[StaffIdentity]:
    """A company's active staff in one role (whom to remind of an order waiting for them)."""
    rows = await session.scalars(
        select(StaffMember)
        .where(
            StaffMember.company_id == company_id,
            StaffMember.role == role,
            StaffMember.disabled_at.is_(None),
        )
        .order_by(StaffMember.created_at)
    )
    return [_identity(staff) for staff in rows]
