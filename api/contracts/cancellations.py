"""Cancelling a signed contract (退房; seed 001 5.5.2, seed 000 解除; 存量房合同注销线上,
seed 004): a party or (for a new home) the sales agent starts it with a reason; a
termination agreement is frozen like a contract and signed again by every party (see
``cancellation_signing``). A new home's is then sealed and reviewed by a regulator, who
approves (the contract is cancelled, the unit for sale again and every fen in supervision
goes back to the buyers) or rejects it; a resale's is submitted by whoever started it once
every party signed. It can be withdrawn until then; a contract has at most one open
cancellation (a partial unique index says so in the database).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import documents, schemas
from api.contracts.cancellation_reads import CANCELLATION, answer
from api.contracts.document_terms import TerminatedContract, TerminationTerms
from api.contracts.models import (
    OPEN_CANCELLATION_STATUSES,
    CancellationStatus,
    ContractCancellation,
    ContractKind,
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.orders import scan_link
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    agent_may_act,
    end_order,
    get_order,
    message_parties,
    my_party,
    parties_of,
    record_event,
    staff_actor,
)
from api.contracts.terms import TERMINATION_TEMPLATE, terms_of
from api.core.clock import business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow.notices import held_for
from api.identity.principal import Principal
from signing.canonical import CanonicalDocument
from signing.pii import mask_name
from signing.qr import new_scene

CANCELLABLE = (
    OrderStatus.signed,
    OrderStatus.filing_pending,
    OrderStatus.filing_rejected,
    OrderStatus.filed,
)


async def _starter(
    session: AsyncSession, principal: Principal, order: ContractOrder
) -> tuple[str, ContractParty | None]:
    """Who may start one: a party bound to the contract (a buyer; a resale's seller too),
    or an agent of a new home's project."""
    if principal.citizen_id is not None:
        party = await my_party(session, principal, order)
        return mask_name(party.name), party
    await agent_may_act(session, principal, order)
    return await staff_actor(session, principal), None


def _applicants(
    parties: list[ContractParty], chosen: list[uuid.UUID], starter: ContractParty | None
) -> list[ContractParty]:
    if not chosen:
        return [starter] if starter is not None else parties
    by_id = {party.id: party for party in parties}
    unknown = [str(party_id) for party_id in chosen if party_id not in by_id]
    if unknown:
        raise DomainError("applicant_unknown", "申请注销人须为本合同的签约方。", applicants=unknown)
    return [by_id[party_id] for party_id in dict.fromkeys(chosen)]


async def _agreement(
    session: AsyncSession,
    order: ContractOrder,
    reason: str,
    applicants: list[ContractParty],
    *,
    now: datetime,
) -> CanonicalDocument:
    """The termination agreement, frozen like a contract: the same parties sign it, and
    every fen held in supervision for the contract goes back to the buyers."""
    terms = terms_of(order)
    assert order.contract_number is not None and order.document_hash is not None
    assert order.completed_at is not None
    agreement = TerminationTerms(
        agreement_kind="termination",
        title="存量房买卖合同注销协议"
        if order.kind is ContractKind.resale
        else "商品房买卖合同解除协议",
        contract=TerminatedContract(
            contract_number=order.contract_number,
            title=terms.title,
            document_hash=order.document_hash,
            signed_on=business_date(order.completed_at).isoformat(),
            unit=terms.unit,
            price_fen=order.price_fen,
            filing_number=order.filing_number or "",
        ),
        developer=terms.developer,
        parties=terms.parties,
        reason=reason,
        applicants=[party.name for party in applicants],
        refund_fen=await held_for(session, order.id),
        agreed_on=business_date(now).isoformat(),
    )
    return documents.freeze(TERMINATION_TEMPLATE, agreement)


async def start(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.NewCancellation,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.CancellationAnswer:
    reason = data.reason.strip()
    if not reason:
        raise DomainError("reason_required", "请填写退房原因。")
    order = await get_order(session, order_id, lock=True)
    actor, starter = await _starter(session, principal, order)
    if order.status is OrderStatus.cancellation_pending:
        raise DomainError("cancellation_open", "该合同已有正在办理的注销申请。")
    if order.status not in CANCELLABLE:
        raise DomainError(
            "contract_not_cancellable",
            "只有已签订的合同可以申请注销。",
            order_status=order.status.value,
        )
    parties = await parties_of(session, order.id)
    applicants = _applicants(parties, data.applicants, starter)
    document = await _agreement(session, order, reason, applicants, now=now)
    cancellation = ContractCancellation(
        order_id=order.id,
        company_id=order.company_id,
        status=CancellationStatus.awaiting_signatures,
        reason=reason,
        applicant_party_ids=[str(party.id) for party in applicants],
        previous_status=order.status,
        started_by=actor,
        started_by_citizen_id=principal.citizen_id,
        started_by_staff_id=principal.staff_id,
        scene=new_scene(),
        document_json=document.canonical_text,
        document_hash=document.document_hash,
        decision_reason="",
        created_at=now,
        updated_at=now,
    )
    session.add(cancellation)
    try:
        await session.flush()
    except IntegrityError:  # another start won the race for this contract
        raise DomainError("cancellation_open", "该合同已有正在办理的注销申请。") from None
    order.status = OrderStatus.cancellation_pending
    order.updated_at = now
    await record_event(
        session,
        order,
        "cancellation_started",
        actor=actor,
        now=now,
        detail={
            "cancellation_id": str(cancellation.id),
            "reason": reason,
            "applicants": [party.position for party in applicants],
            "document_hash": document.document_hash,
        },
    )
    link = scan_link(policy.public_base_url, cancellation.scene)
    await message_parties(
        session,
        keys,
        order,
        parties,
        template="resale_cancellation_invitation"
        if order.kind is ContractKind.resale
        else "cancellation_invitation",
        params={"contract_number": order.contract_number, "link": link},
        event=f"cancellation-{cancellation.id}",
        now=now,
    )
    return await answer(
        session, cancellation, order, policy=policy, with_scene=True, viewer=principal
    )


async def lock_cancellation(
    session: AsyncSession, cancellation_id: uuid.UUID
) -> tuple[ContractCancellation, ContractOrder]:
    """The cancellation and its contract, both locked."""
    cancellation = await session.get(ContractCancellation, cancellation_id)
    if cancellation is None:
        raise DomainError.not_found(CANCELLATION)
    order = await get_order(session, cancellation.order_id, lock=True)
    await session.refresh(cancellation, with_for_update=True)
    return cancellation, order


def refuse_closed(cancellation: ContractCancellation) -> None:
    if cancellation.status not in OPEN_CANCELLATION_STATUSES:
        raise DomainError(
            "cancellation_closed",
            "该注销申请已结束。",
            cancellation_status=cancellation.status.value,
        )


async def _restore(
    session: AsyncSession,
    cancellation: ContractCancellation,
    order: ContractOrder,
    status: CancellationStatus,
    *,
    event: str,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    """The cancellation ends without cancelling: the contract is as it was before."""
    cancellation.status = status
    cancellation.decision_reason = reason
    cancellation.updated_at = cancellation.ended_at = now
    order.status = cancellation.previous_status
    order.updated_at = now
    await record_event(
        session,
        order,
        event,
        actor=actor,
        now=now,
        detail={"cancellation_id": str(cancellation.id), "reason": reason},
    )


async def withdraw(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.CancellationAnswer:
    """Whoever started it (the same buyer, or an agent of the project) takes it back."""
    cancellation, order = await lock_cancellation(session, cancellation_id)
    actor, _ = await _starter(session, principal, order)
    refuse_closed(cancellation)
    if principal.citizen_id is not None and principal.citizen_id != (
        cancellation.started_by_citizen_id
    ):
        raise DomainError("not_the_applicant", "只有发起注销的一方可以撤回。")
    if cancellation.status is CancellationStatus.awaiting_submit:
        raise DomainError(
            "cancellation_signed_by_all", "各方已全部签署注销协议，不能撤回，请由发起方提交。"
        )
    await _restore(
        session,
        cancellation,
        order,
        CancellationStatus.withdrawn,
        event="cancellation_withdrawn",
        actor=actor,
        reason="",
        now=now,
    )
    return await answer(session, cancellation, order, policy=policy, viewer=principal)


async def _in_review(
    session: AsyncSession, cancellation_id: uuid.UUID
) -> tuple[ContractCancellation, ContractOrder]:
    cancellation, order = await lock_cancellation(session, cancellation_id)
    refuse_closed(cancellation)
    if cancellation.status is not CancellationStatus.awaiting_review:
        raise DomainError(
            "cancellation_not_ready",
            "买受人尚未全部签署或开发企业尚未盖章，暂不能审核。",
            cancellation_status=cancellation.status.value,
        )
    return cancellation, order


async def approve(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.CancellationAnswer:
    """The contract is cancelled (已注销), its unit free, its supervised money refunded."""
    cancellation, order = await _in_review(session, cancellation_id)
    cancellation.reviewed_by = principal.staff_id
    await _cancel(
        session, keys, cancellation, order, actor=await staff_actor(session, principal), now=now
    )
    return await answer(session, cancellation, order, policy=policy, viewer=principal)


async def submit(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.CancellationAnswer:
    """A resale's cancellation, signed by every party, submitted by the party who started
    it: the contract is cancelled (已注销)."""
    cancellation, order = await lock_cancellation(session, cancellation_id)
    actor, _ = await _starter(session, principal, order)
    refuse_closed(cancellation)
    if principal.citizen_id != cancellation.started_by_citizen_id:
        raise DomainError("not_the_applicant", "只有发起注销的一方可以提交。")
    if cancellation.status is not CancellationStatus.awaiting_submit:
        raise DomainError(
            "cancellation_not_ready",
            "各方尚未全部签署注销协议，暂不能提交。",
            cancellation_status=cancellation.status.value,
        )
    await _cancel(session, keys, cancellation, order, actor=actor, now=now)
    return await answer(session, cancellation, order, policy=policy, viewer=principal)


async def _cancel(
    session: AsyncSession,
    keys: ServiceKeys,
    cancellation: ContractCancellation,
    order: ContractOrder,
    *,
    actor: str,
    now: datetime,
) -> None:
    """The contract is cancelled (已注销), its unit free, its supervised money refunded to
    the buyers through the ledger, every party told."""
    cancellation.status = CancellationStatus.approved
    cancellation.updated_at = cancellation.ended_at = now
    held = await held_for(session, order.id)
    await end_order(session, order, OrderStatus.cancelled, reason="cancelled", now=now)
    await record_event(
        session,
        order,
        "cancelled",
        actor=actor,
        now=now,
        detail={"cancellation_id": str(cancellation.id), "refund_fen": held},
    )
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="resale_contract_cancelled"
        if order.kind is ContractKind.resale
        else "contract_cancelled",
        params={"contract_number": order.contract_number},
        event="cancelled",
        now=now,
    )


async def reject(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    reason: str,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.CancellationAnswer:
    if not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    cancellation, order = await _in_review(session, cancellation_id)
    cancellation.reviewed_by = principal.staff_id
    await _restore(
        session,
        cancellation,
        order,
        CancellationStatus.rejected,
        event="cancellation_rejected",
        actor=await staff_actor(session, principal),
        reason=reason.strip(),
        now=now,
    )
    return await answer(session, cancellation, order, policy=policy, viewer=principal)
