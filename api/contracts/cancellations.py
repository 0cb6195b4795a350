"""Cancelling a signed contract (退房; seed 001 5.5.2, seed 000 解除): a buyer or the sales
agent starts it with a reason and the applying buyers; a termination agreement is frozen
like a contract and signed again by every buyer (see ``cancellation_signing``) and sealed;
a regulator reviews it with its supporting documents and approves (the contract is
cancelled, the unit is for sale again and every fen in supervision goes back to the
buyers) or rejects it. It can be withdrawn until it is decided; a contract has at most one
open cancellation (a partial unique index says so in the database).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.keystore import Keystore
from api.contracts.models import (
    OPEN_CANCELLATION_STATUSES,
    CancellationDocument,
    CancellationSignature,
    CancellationStatus,
    ContractCancellation,
    ContractEvent,
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
from api.contracts.terms import (
    TERMINATION_TEMPLATE,
    TERMINATION_VERSION,
    TerminationTerms,
    terms_of,
)
from api.core.clock import business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow.notices import held_for
from api.identity.models import StaffRole
from api.identity.principal import Principal
from signing.canonical import CanonicalDocument, canonical_document, load_canonical_document
from signing.evidence import build_bundle
from signing.pii import mask_name
from signing.qr import new_scene
from signing.signatures import SignatureRecord

CANCELLABLE = (
    OrderStatus.signed,
    OrderStatus.filing_pending,
    OrderStatus.filing_rejected,
    OrderStatus.filed,
)
CANCELLATION = "注销申请"


# ------------------------------------------------------------------ start and withdraw


async def _starter(
    session: AsyncSession, principal: Principal, order: ContractOrder
) -> tuple[str, ContractParty | None]:
    """Who may start one: a buyer bound to the contract, or an agent of its project."""
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
        raise DomainError(
            "applicant_unknown", "申请注销人须为本合同的买受人。", applicants=unknown
        )
    return [by_id[party_id] for party_id in dict.fromkeys(chosen)]


async def _agreement(
    session: AsyncSession,
    order: ContractOrder,
    reason: str,
    applicants: list[ContractParty],
    *,
    now: datetime,
) -> CanonicalDocument:
    """The termination agreement, frozen like a contract: the same parties sign it."""
    terms = terms_of(order)
    agreement = TerminationTerms(
        title="商品房买卖合同解除协议",
        contract_number=order.contract_number or "",
        filing_number=order.filing_number or "",
        unit=terms.unit,
        developer=terms.developer,
        price_fen=order.price_fen,
        reason=reason,
        applicants=[party.name for party in applicants],
        supervised_paid_fen=await held_for(session, order.id),
        date=business_date(now).isoformat(),
        parties=terms.parties,
    )
    return canonical_document(TERMINATION_TEMPLATE, TERMINATION_VERSION, agreement.to_document())


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
        template="cancellation_invitation",
        params={"contract_number": order.contract_number, "link": link},
        event=f"cancellation-{cancellation.id}",
        now=now,
    )
    return await answer(session, cancellation, order, policy=policy, with_scene=True)


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
    return await answer(session, cancellation, order, policy=policy)


# ------------------------------------------------------------------ the regulator decides


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
    cancellation.status = CancellationStatus.approved
    cancellation.reviewed_by = principal.staff_id
    cancellation.updated_at = cancellation.ended_at = now
    held = await held_for(session, order.id)
    await end_order(session, order, OrderStatus.cancelled, reason="cancelled", now=now)
    await record_event(
        session,
        order,
        "cancelled",
        actor=await staff_actor(session, principal),
        now=now,
        detail={"cancellation_id": str(cancellation.id), "refund_fen": held},
    )
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="contract_cancelled",
        params={"contract_number": order.contract_number},
        event="cancelled",
        now=now,
    )
    return await answer(session, cancellation, order, policy=policy)


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
    return await answer(session, cancellation, order, policy=policy)


# ------------------------------------------------------------------ reads


async def readable(
    session: AsyncSession, principal: Principal, cancellation_id: uuid.UUID
) -> tuple[ContractCancellation, ContractOrder]:
    """A cancellation for regulators, its company's staff and the contract's parties;
    "not found" for anyone else."""
    cancellation = await session.get(ContractCancellation, cancellation_id)
    if cancellation is None:
        raise DomainError.not_found(CANCELLATION)
    order = await get_order(session, cancellation.order_id)
    if principal.role is StaffRole.regulator or (
        principal.staff_id is not None and principal.company_id == order.company_id
    ):
        return cancellation, order
    if principal.citizen_id is not None and await session.scalar(
        select(ContractParty.id).where(
            ContractParty.order_id == order.id, ContractParty.citizen_id == principal.citizen_id
        )
    ):
        return cancellation, order
    raise DomainError.not_found(CANCELLATION)


async def answer(
    session: AsyncSession,
    cancellation: ContractCancellation,
    order: ContractOrder,
    *,
    policy: ContractPolicy,
    with_scene: bool = False,
) -> schemas.CancellationAnswer:
    parties = await parties_of(session, order.id)
    signed = dict(
        (
            await session.execute(
                select(CancellationSignature.signer_key, CancellationSignature.signed_at).where(
                    CancellationSignature.cancellation_id == cancellation.id
                )
            )
        ).all()
    )
    unit = terms_of(order).unit
    names = {str(party.id): party.name for party in parties}
    open_ = cancellation.status is CancellationStatus.awaiting_signatures
    return schemas.CancellationAnswer(
        id=cancellation.id,
        order_id=order.id,
        contract_number=order.contract_number or "",
        unit=schemas.UnitAnswer(
            id=order.unit_id, project=unit.project, building=unit.building, room_no=unit.room_no
        ),
        status=cancellation.status,
        reason=cancellation.reason,
        applicants=[mask_name(names.get(p, "")) for p in cancellation.applicant_party_ids],
        started_by=cancellation.started_by,
        document_hash=cancellation.document_hash,
        signers=[
            *(
                schemas.CancellationSigner(
                    party_id=party.id,
                    role=party.role,
                    name=mask_name(party.name),
                    signed_at=signed.get(str(party.id)),
                )
                for party in parties
            ),
            schemas.CancellationSigner(
                party_id=None,
                role="seal",
                name=terms_of(order).developer.name,
                signed_at=signed.get("seal"),
            ),
        ],
        documents=await document_answers(session, cancellation.id),
        decision_reason=cancellation.decision_reason,
        created_at=cancellation.created_at,
        ended_at=cancellation.ended_at,
        scene=cancellation.scene if with_scene and open_ else None,
        scan_url=scan_link(policy.public_base_url, cancellation.scene)
        if with_scene and open_
        else None,
    )


async def document_answers(
    session: AsyncSession, cancellation_id: uuid.UUID
) -> list[schemas.CancellationDocumentAnswer]:
    rows = await session.execute(
        select(
            CancellationDocument.id,
            CancellationDocument.filename,
            CancellationDocument.content_type,
            CancellationDocument.size_bytes,
            CancellationDocument.sha256,
            CancellationDocument.uploaded_by,
            CancellationDocument.uploaded_at,
        )
        .where(CancellationDocument.cancellation_id == cancellation_id)
        .order_by(CancellationDocument.uploaded_at, CancellationDocument.id)
    )
    return [schemas.CancellationDocumentAnswer(*row) for row in rows]


async def detail(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
) -> schemas.CancellationAnswer:
    cancellation, order = await readable(session, principal, cancellation_id)
    return await answer(session, cancellation, order, policy=policy, with_scene=True)


async def signing_link(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
) -> str:
    """What the cancellation's QR code opens, while buyers still sign it."""
    cancellation, _ = await readable(session, principal, cancellation_id)
    if cancellation.status is not CancellationStatus.awaiting_signatures:
        raise DomainError(
            "cancellation_not_signable",
            "该解除协议已不在签署阶段。",
            cancellation_status=cancellation.status.value,
        )
    return scan_link(policy.public_base_url, cancellation.scene)


async def list_cancellations(
    session: AsyncSession,
    principal: Principal,
    *,
    status: CancellationStatus | None,
    policy: ContractPolicy,
    limit: int = 50,
    offset: int = 0,
) -> schemas.CancellationList:
    query = select(ContractCancellation)
    if principal.role is StaffRole.regulator:
        pass  # every company's
    elif principal.staff_id is not None:
        query = query.where(ContractCancellation.company_id == principal.company_id)
    else:
        query = query.where(
            ContractCancellation.order_id.in_(
                select(ContractParty.order_id).where(
                    ContractParty.citizen_id == principal.citizen_id
                )
            )
        )
    if status is not None:
        query = query.where(ContractCancellation.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        await session.scalars(
            query.order_by(ContractCancellation.created_at.desc(), ContractCancellation.id)
            .limit(limit)
            .offset(offset)
        )
    )
    items = []
    for cancellation in rows:
        order = await get_order(session, cancellation.order_id)
        items.append(await answer(session, cancellation, order, policy=policy))
    return schemas.CancellationList(items=items, total=total)


async def document_of(
    session: AsyncSession, principal: Principal, cancellation_id: uuid.UUID
) -> schemas.DocumentAnswer:
    """The termination agreement, as hashed and signed."""
    cancellation, _ = await readable(session, principal, cancellation_id)
    return schemas.DocumentAnswer(
        document_hash=cancellation.document_hash,
        canonical_json=cancellation.document_json,
        document=json.loads(cancellation.document_json),
    )


async def evidence(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The termination agreement's evidence bundle: every party's signature and the seal
    over it, and the contract's whole hash-chained timeline; it verifies offline."""
    cancellation, order = await readable(session, principal, cancellation_id)
    if cancellation.status in (
        CancellationStatus.awaiting_signatures,
        CancellationStatus.awaiting_seal,
    ):
        raise DomainError("evidence_not_ready", "解除协议尚未签署完成，暂无证据包。")
    records = [
        SignatureRecord.from_dict(json.loads(raw))
        for raw in await session.scalars(
            select(CancellationSignature.record_json)
            .where(CancellationSignature.cancellation_id == cancellation.id)
            .order_by(CancellationSignature.signed_at, CancellationSignature.role)
        )
    ]
    chained = [
        json.loads(raw)
        for raw in await session.scalars(
            select(ContractEvent.event_json)
            .where(ContractEvent.order_id == order.id)
            .order_by(ContractEvent.seq)
        )
    ]
    ca = await keystore.ca(now)
    return build_bundle(
        ca,
        load_canonical_document(cancellation.document_json),
        str(order.id),
        records,
        chained,
        now,
    )

