"""Reading cancellations: who may see one (regulators, the company's staff, the
contract's parties), the answer with its signers and documents, lists, the termination
agreement and its evidence bundle.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.keystore import Keystore
from api.contracts.models import (
    CancellationDocument,
    CancellationSignature,
    CancellationStatus,
    ContractCancellation,
    ContractOrder,
    ContractParty,
)
from api.contracts.orders import scan_link
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    chained_events,
    get_order,
    parties_of,
    unit_answer,
)
from api.contracts.terms import (
    terms_of,
)
from api.core.errors import DomainError
from api.identity.models import StaffRole
from api.identity.principal import Principal
from signing.canonical import load_canonical_document
from signing.evidence import build_bundle
from signing.pii import mask_name
from signing.signatures import SignatureRecord

CANCELLATION = "注销申请"


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
    viewer: Principal,
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
        unit=unit_answer(order.unit_id, unit),
        status=cancellation.status,
        reason=cancellation.reason,
        applicants=[mask_name(names.get(p, "")) for p in cancellation.applicant_party_ids],
        started_by=cancellation.started_by,
        started_by_me=(
            viewer.citizen_id is not None
            and viewer.citizen_id == cancellation.started_by_citizen_id
        )
        or (viewer.staff_id is not None and viewer.staff_id == cancellation.started_by_staff_id),
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
            *(
                schemas.CancellationSigner(
                    party_id=None,
                    role="seal",
                    name=developer.name,
                    signed_at=signed.get("seal"),
                )
                for developer in [terms_of(order).developer]
                if developer is not None
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
    return await answer(
        session, cancellation, order, policy=policy, with_scene=True, viewer=principal
    )


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
        items.append(await answer(session, cancellation, order, policy=policy, viewer=principal))
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
    chained = await chained_events(session, order.id)
    ca = await keystore.ca(now)
    return build_bundle(
        ca,
        load_canonical_document(cancellation.document_json),
        str(order.id),
        records,
        chained,
        now,
    )
