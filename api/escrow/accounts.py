"""Supervised accounts (预售资金监管账户): a company admin registers one per project with its
milestones and the share of the key supervised amount each leaves in the account, a
regulator approves or rejects it and sets the key amount per m² from which the amounts
are computed; who may read an account; what an account holds, by ledger account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.escrow import ledger, schemas
from api.escrow.models import (
    AccountScope,
    AccountStatus,
    Instruction,
    InstructionKind,
    InstructionStatus,
    LedgerAccount,
    LedgerKind,
    SupervisedAccount,
)
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal
from api.register.queries import (
    AREA_SCALE,
    format_area,
    get_projects,
    project_building_area,
)
from signing.pii import mask_account


def is_regulator(principal: Principal) -> bool:
    return principal.kind is PrincipalKind.staff and principal.role is StaffRole.regulator


def can_read_company(principal: Principal, company_id: uuid.UUID) -> bool:
    """Staff of the company, or a regulator."""
    return is_regulator(principal) or (
        principal.kind is PrincipalKind.staff and principal.company_id == company_id
    )


async def create_supervised_account(
    session: AsyncSession,
    principal: Principal,
    data: schemas.NewSupervisedAccount,
    *,
    now: datetime,
) -> SupervisedAccount:
    """A company admin registers a supervised account for one of the company's projects."""
    projects = await get_projects(session, [data.project_id])
    if not projects or projects[0].company_id != principal.company_id:
        raise DomainError.not_found("项目")
    codes = [m.code for m in data.milestones]
    if len(set(codes)) != len(codes):
        raise DomainError("milestone_duplicate", "工程进度节点编码不能重复。")
    shares = [m.key_percent for m in data.milestones]
    if any(later > earlier for earlier, later in pairwise(shares)):
        # As construction advances, what must stay can only shrink.
        raise DomainError(
            "milestone_percents_rising", "后一工程进度节点的重点监管资金比例不能高于前一节点。"
        )
    taken = await session.scalar(
        select(SupervisedAccount.id).where(SupervisedAccount.account_number == data.account_number)
    )
    if taken is not None:
        raise DomainError("account_number_taken", "该监管账号已登记。")
    account = SupervisedAccount(
        id=uuid.uuid4(),
        company_id=projects[0].company_id,
        project_id=data.project_id,
        bank_name=data.bank_name.strip(),
        account_name=data.account_name.strip(),
        account_number=data.account_number,
        milestones=[msgspec.to_builtins(m) for m in data.milestones],
        status=AccountStatus.pending,
        created_by=principal.staff_id,
        created_at=now,
        reviewed_by=None,
        reviewed_at=None,
        review_reason="",
    )
    session.add(account)
    await session.flush()
    return account


async def review_account(
    session: AsyncSession,
    principal: Principal,
    account_id: uuid.UUID,
    *,
    approve: bool,
    reason: str,
    now: datetime,
    key_rate_fen_per_m2: int | None = None,
) -> SupervisedAccount:
    """Approve (with the key amount per m², or set it later with ``set_key_rate``; no
    release is allowed before) or reject with a reason."""
    account = await lock_account(session, account_id)
    if account is None:
        raise DomainError.not_found("监管账户")
    if account.status is not AccountStatus.pending:
        raise DomainError("account_already_reviewed", "该监管账户已审核。")
    if not approve and not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    if approve:
        other = await approved_account_for_project(session, account.project_id)
        if other is not None:
            raise DomainError("project_has_account", "该项目已有生效的监管账户。")
    if approve and key_rate_fen_per_m2 is not None:
        await _apply_key_rate(session, principal, account, key_rate_fen_per_m2, now=now)
    account.status = AccountStatus.approved if approve else AccountStatus.rejected
    account.reviewed_by = principal.staff_id
    account.reviewed_at = now
    account.review_reason = reason.strip()
    if approve:
        await ensure_account_ledgers(session, account.id, now=now)
    await session.flush()
    return account


def key_amount_fen(rate_fen_per_m2: int, area: int, percent: int) -> int:
    """rate (fen/m²) × area (0.0001 m²) × percent, in whole fen, rounded up: the key
    amount is a floor on what stays in the account, so rounding never lets out the
    fraction of a fen the exact product keeps in. Integers only, no float anywhere."""
    exact_numerator = rate_fen_per_m2 * area * percent
    denominator = AREA_SCALE * 100
    return -(-exact_numerator // denominator)


def has_fixed_key_amounts(account: SupervisedAccount) -> bool:
    """Registered before shares existed: key amounts typed by the company, kept as they
    are (the release limit reads them unchanged)."""
    return any("key_percent" not in m for m in account.milestones)


async def _apply_key_rate(
    session: AsyncSession,
    principal: Principal,
    account: SupervisedAccount,
    rate_fen_per_m2: int,
    *,
    now: datetime,
) -> None:
    if has_fixed_key_amounts(account):
        raise DomainError(
            "key_amounts_fixed", "该监管账户的重点监管资金为登记时约定的固定金额，不按面积计算。"
        )
    area = await project_building_area(session, account.project_id)
    if area <= 0:
        raise DomainError("project_area_unknown", "该项目尚无测绘建筑面积，无法计算重点监管资金。")
    # Computed now and kept: the amounts change only when a regulator sets the rate again
    # (a 协议变更), not silently when a survey is re-imported.
    account.milestones = [
        {**m, "key_amount_fen": key_amount_fen(rate_fen_per_m2, area, int(m["key_percent"]))}
        for m in account.milestones
    ]
    account.key_rate_fen_per_m2 = rate_fen_per_m2
    account.key_area = area
    account.key_rate_set_by = principal.staff_id
    account.key_rate_set_at = now


async def set_key_rate(
    session: AsyncSession,
    principal: Principal,
    account_id: uuid.UUID,
    *,
    rate_fen_per_m2: int,
    now: datetime,
) -> SupervisedAccount:
    """A regulator sets (or changes) the key amount per m² of an account under review or
    in force; every milestone's key amount is computed again from today's areas."""
    account = await lock_account(session, account_id)
    if account is None:
        raise DomainError.not_found("监管账户")
    if account.status is AccountStatus.rejected:
        raise DomainError("account_not_approved", "该监管账户已被驳回。")
    await _apply_key_rate(session, principal, account, rate_fen_per_m2, now=now)
    await session.flush()
    return account


async def ensure_account_ledgers(
    session: AsyncSession, supervised_account_id: uuid.UUID, *, now: datetime
) -> dict[LedgerKind, uuid.UUID]:
    kinds = [
        LedgerKind.supervised,
        LedgerKind.developer_payouts,
        LedgerKind.buyer_refunds,
        LedgerKind.seller_payouts,
        LedgerKind.suspense,
    ]
    codes = {ledger.account_code(kind, supervised_account_id): kind for kind in kinds}
    found = {
        codes[code]: account_id
        for code, account_id in await session.execute(
            select(LedgerAccount.code, LedgerAccount.id).where(LedgerAccount.code.in_(codes))
        )
    }
    for kind in kinds:
        if kind not in found:
            found[kind] = await ledger.ensure_account(
                session, kind, supervised_account_id=supervised_account_id, now=now
            )
    return found


async def approved_account_for_project(
    session: AsyncSession, project_id: uuid.UUID
) -> SupervisedAccount | None:
    return await session.scalar(
        select(SupervisedAccount)
        .where(
            SupervisedAccount.project_id == project_id,
            SupervisedAccount.status == AccountStatus.approved,
        )
        .order_by(SupervisedAccount.reviewed_at.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class CityAccount:
    """The city's account for resale buyers' money (存量房交易资金监管账户), as a contract
    names it: a public account, so its number is given in full."""

    id: uuid.UUID
    bank_name: str
    account_name: str
    account_number: str


async def city_resale_account(session: AsyncSession) -> CityAccount | None:
    account = await session.scalar(
        select(SupervisedAccount)
        .where(
            SupervisedAccount.scope == AccountScope.resale,
            SupervisedAccount.status == AccountStatus.approved,
        )
        .order_by(SupervisedAccount.reviewed_at.desc())
        .limit(1)
    )
    if account is None:
        return None
    return CityAccount(account.id, account.bank_name, account.account_name, account.account_number)


async def list_accounts(session: AsyncSession, principal: Principal) -> list[SupervisedAccount]:
    statement = select(SupervisedAccount).order_by(SupervisedAccount.created_at)
    if not is_regulator(principal):
        statement = statement.where(SupervisedAccount.company_id == principal.company_id)
    return list(await session.scalars(statement))


async def readable_account(
    session: AsyncSession, principal: Principal, account_id: uuid.UUID
) -> SupervisedAccount:
    account = await session.get(SupervisedAccount, account_id)
    if account is None or not can_read_company(principal, account.company_id):
        raise DomainError.not_found("监管账户")
    return account


def account_answer(account: SupervisedAccount) -> schemas.SupervisedAccountAnswer:
    return schemas.SupervisedAccountAnswer(
        id=account.id,
        company_id=account.company_id,
        project_id=account.project_id,
        scope=account.scope.value,
        bank_name=account.bank_name,
        account_name=account.account_name,
        account_number_masked=mask_account(account.account_number),
        milestones=[
            schemas.MilestoneAnswer(
                code=m["code"],
                name=m["name"],
                key_percent=m.get("key_percent"),
                key_amount_fen=m.get("key_amount_fen"),
            )
            for m in account.milestones
        ],
        key_basis="fixed" if has_fixed_key_amounts(account) else "computed",
        key_rate_fen_per_m2=account.key_rate_fen_per_m2,
        key_area=format_area(account.key_area) if account.key_area is not None else None,
        status=account.status.value,
        created_at=account.created_at,
        reviewed_at=account.reviewed_at,
        review_reason=account.review_reason,
    )


async def register_approved_account(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None,
    company_id: uuid.UUID | None,
    bank_name: str,
    account_name: str,
    account_number: str,
    milestones: list[dict[str, Any]],
    note: str,
    now: datetime,
    scope: AccountScope = AccountScope.project,
) -> SupervisedAccount:
    """An account the platform registers as already approved, outside the admin-and-
    regulator review: the city's resale account (no project, no company, no milestones),
    the demo world's, accounts brought over from a city's old system."""
    platform = uuid.UUID(int=0)
    account = SupervisedAccount(
        id=uuid.uuid4(),
        company_id=company_id,
        project_id=project_id,
        scope=scope,
        bank_name=bank_name,
        account_name=account_name,
        account_number=account_number,
        milestones=milestones,
        status=AccountStatus.approved,
        created_by=platform,
        created_at=now,
        reviewed_by=platform,
        reviewed_at=now,
        review_reason=note,
    )
    session.add(account)
    await session.flush()
    await ensure_account_ledgers(session, account.id, now=now)
    return account


@dataclass(frozen=True)
class AccountFigures:
    bank_balance_fen: int
    held_for_contracts_fen: int
    refunds_pending_fen: int
    suspense_fen: int
    released_fen: int
    releases_pending_fen: int
    payouts_pending_fen: int = 0  # resale money owed to sellers, waiting for the bank

    @property
    def available_for_release_fen(self) -> int:
        return (
            self.bank_balance_fen
            - self.refunds_pending_fen
            - self.payouts_pending_fen
            - self.suspense_fen
            - self.releases_pending_fen
        )


async def figures(session: AsyncSession, account_id: uuid.UUID, *, now: datetime) -> AccountFigures:
    # Read only (statements are GETs): ledger accounts not made yet count as zero.
    ids = dict(
        (
            await session.execute(
                select(LedgerAccount.kind, LedgerAccount.id).where(
                    LedgerAccount.supervised_account_id == account_id,
                    LedgerAccount.kind != LedgerKind.contract,
                )
            )
        ).all()
    )
    found = await ledger.balances(session, list(ids.values()))
    values = {kind: found[i] for kind, i in ids.items()}
    contract_ids = list(
        await session.scalars(
            select(LedgerAccount.id).where(
                LedgerAccount.supervised_account_id == account_id,
                LedgerAccount.kind == LedgerKind.contract,
            )
        )
    )
    held = sum((await ledger.balances(session, contract_ids)).values())
    pending = await session.scalar(
        select(func.coalesce(func.sum(Instruction.amount_fen), 0)).where(
            Instruction.supervised_account_id == account_id,
            Instruction.kind == InstructionKind.release,
            Instruction.status == InstructionStatus.approved,
        )
    )
    return AccountFigures(
        bank_balance_fen=values.get(LedgerKind.supervised, 0),
        held_for_contracts_fen=held,
        refunds_pending_fen=values.get(LedgerKind.buyer_refunds, 0),
        suspense_fen=values.get(LedgerKind.suspense, 0),
        released_fen=values.get(LedgerKind.developer_payouts, 0),
        releases_pending_fen=int(pending or 0),
        payouts_pending_fen=values.get(LedgerKind.seller_payouts, 0),
    )


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> SupervisedAccount | None:
    statement = select(SupervisedAccount).where(SupervisedAccount.id == account_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return await session.scalar(statement)
