"""Cancellation routes (退房 / 合同注销): a buyer or the agent starts one; buyers scan its QR
(``POST /api/v1/scan``), sign with an SMS code; the seal keeper seals; the regulator reads
its documents and approves or rejects; whoever started it may withdraw it before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import (
    cancellation_documents,
    cancellation_reads,
    cancellation_signing,
    cancellations,
    schemas,
)
from api.contracts.acts import Client
from api.contracts.cancellation_documents import MAX_DOCUMENT_BYTES
from api.contracts.keystore import Keystore
from api.contracts.models import CancellationStatus
from api.contracts.policy import ContractPolicy
from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.identity.guards import citizens_only, logged_in, regulators_only, seal_keepers_only
from api.identity.principal import Principal
from notifications.sms import SmsChannel
from signing.qr import qr_png

CANCELLATION = "注销申请"
ORDER = "合同订单"


def _client(request: Request[Any, Any, Any]) -> Client:
    return Client(
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )


@dataclass
class DocumentUpload:
    file: UploadFile


@post(
    "/api/v1/contracts/{order_id:str}/cancellation",
    guards=[logged_in],
    tags=["cancellations"],
    summary="申请退房/合同注销 (a buyer or the agent): its id and scene",
)
async def start_cancellation(
    order_id: FromPath[str],
    data: JSONBody[schemas.NewCancellation],
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    keys: NamedDependency[ServiceKeys],
    policy: NamedDependency[ContractPolicy],
    principal: NamedDependency[Principal],
) -> schemas.CancellationAnswer:
    return await cancellations.start(
        db, keys, principal, parse_id(order_id, what=ORDER), data, policy=policy, now=clock.now()
    )


class CancellationController(Controller):
    path = "/api/v1/cancellations"
    tags = ("cancellations",)
    guards = [logged_in]  # noqa: RUF012

    @get("", summary="注销申请 (regulators: all; staff: own company; citizens: own contracts)")
    async def list_cancellations(
        self,
        db: NamedDependency[AsyncSession],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
        status: FromQuery[CancellationStatus | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> schemas.CancellationList:
        return await cancellation_reads.list_cancellations(
            db, principal, status=status, policy=policy, limit=limit, offset=offset
        )

    @get("/{cancellation_id:str}", summary="注销申请详情")
    async def detail(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellation_reads.detail(
            db, principal, parse_id(cancellation_id, what=CANCELLATION), policy=policy
        )

    @get("/{cancellation_id:str}/qr.png", summary="解除协议签署二维码 (PNG)")
    async def qr(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        link = await cancellation_reads.signing_link(
            db, principal, parse_id(cancellation_id, what=CANCELLATION), policy=policy
        )
        return Response(qr_png(link), media_type="image/png", headers={"Cache-Control": "no-store"})

    @get("/{cancellation_id:str}/document", summary="解除协议 (canonical JSON)")
    async def document(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> schemas.DocumentAnswer:
        return await cancellation_reads.document_of(
            db, principal, parse_id(cancellation_id, what=CANCELLATION)
        )

    @get("/{cancellation_id:str}/evidence", summary="解除协议证据包 (verifies offline)")
    async def evidence(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keystore: NamedDependency[Keystore],
        principal: NamedDependency[Principal],
    ) -> dict[str, Any]:
        return await cancellation_reads.evidence(
            db,
            keystore,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/signatures/challenge",
        status_code=200,
        guards=[citizens_only],
        summary="获取解除协议签署验证码 (a buyer, after a fresh face check)",
    )
    async def signature_challenge(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeAnswer:
        return await cancellation_signing.signature_challenge(
            db,
            keys,
            sms,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/signatures",
        status_code=200,
        guards=[citizens_only],
        summary="签署解除协议 (a buyer)",
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        cancellation_id: FromPath[str],
        data: JSONBody[schemas.SignIn],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        keystore: NamedDependency[Keystore],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationSigned:
        return await cancellation_signing.sign(
            db,
            keys,
            keystore,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            data,
            policy=policy,
            client=_client(request),
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/seal/challenge",
        status_code=200,
        guards=[seal_keepers_only],
        summary="获取解除协议盖章验证码 (seal keeper)",
    )
    async def seal_challenge(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeAnswer:
        return await cancellation_signing.seal_challenge(
            db,
            keys,
            sms,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/seal",
        status_code=200,
        guards=[seal_keepers_only],
        summary="解除协议盖章 (seal keeper); then the regulator reviews",
    )
    async def seal(
        self,
        request: Request[Any, Any, Any],
        cancellation_id: FromPath[str],
        data: JSONBody[schemas.SealIn],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        keystore: NamedDependency[Keystore],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellation_signing.seal(
            db,
            keys,
            keystore,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            data,
            policy=policy,
            client=_client(request),
            now=clock.now(),
        )

    @post("/{cancellation_id:str}/withdraw", status_code=200, summary="撤回注销申请")
    async def withdraw(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellations.withdraw(
            db,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/submit",
        status_code=200,
        guards=[citizens_only],
        summary="提交注销 (a resale: the party who started it, once every party signed)",
    )
    async def submit(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellations.submit(
            db,
            keys,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/approve",
        status_code=200,
        guards=[regulators_only],
        summary="审核通过注销 (regulator): cancelled, unit for sale, money refunded",
    )
    async def approve(
        self,
        cancellation_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellations.approve(
            db,
            keys,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/reject",
        status_code=200,
        guards=[regulators_only],
        summary="驳回注销 (regulator, with a reason)",
    )
    async def reject(
        self,
        cancellation_id: FromPath[str],
        data: JSONBody[schemas.Reason],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationAnswer:
        return await cancellations.reject(
            db,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            reason=data.reason,
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{cancellation_id:str}/documents",
        request_max_body_size=MAX_DOCUMENT_BYTES + 64 * 1024,
        summary="上传凭证 (PDF or image, at most 10 MB; multipart field 'file')",
    )
    async def upload(
        self,
        cancellation_id: FromPath[str],
        data: Annotated[DocumentUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.CancellationDocumentAnswer:
        content = await data.file.read()
        return await cancellation_documents.upload(
            db,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            filename=data.file.filename or "",
            declared_type=data.file.content_type or "",
            content=content,
            now=clock.now(),
        )

    @get("/{cancellation_id:str}/documents/{document_id:str}", summary="下载凭证")
    async def download(
        self,
        cancellation_id: FromPath[str],
        document_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        document = await cancellation_documents.download(
            db,
            principal,
            parse_id(cancellation_id, what=CANCELLATION),
            parse_id(document_id, what="凭证"),
        )
        return Response(
            document.content,
            media_type=document.content_type,
            headers={
                "Cache-Control": "private, no-store",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}",
                "X-Content-Type-Options": "nosniff",
            },
        )


ROUTES = [start_cancellation, CancellationController]
