"""The delivery log for staff: their company's messages; regulators see all. Dead
messages can be sent again by a company admin or a regulator."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.ids import parse_id
from api.identity.guards import staff_only, staff_roles
from api.identity.models import StaffRole
from api.identity.principal import Principal
from api.outbox import service
from api.outbox.models import MessageStatus
from api.outbox.receipts import record_receipts
from api.outbox.schemas import NotificationEntry, NotificationPage
from notifications.sms import SmsChannel


class NotificationController(Controller):
    path = "/api/v1/notifications"
    tags = ("notifications",)

    @get("/", guards=[staff_only], summary="消息发送记录 (delivery log)")
    async def list_notifications(
        self,
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        status: FromQuery[MessageStatus | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> NotificationPage:
        company = None if principal.role is StaffRole.regulator else principal.company_id
        total, rows = await service.list_messages(
            db,
            company_id=company,
            status=status,
            limit=limit,
            offset=offset,
            only_company=principal.role is not StaffRole.regulator,
        )
        return NotificationPage(
            total=total, limit=limit, offset=offset, items=[NotificationEntry.of(m) for m in rows]
        )

    @post(
        "/{message_id:str}/retry",
        status_code=200,
        guards=[staff_roles(StaffRole.company_admin, StaffRole.regulator)],
        summary="重新发送失败的消息",
    )
    async def retry(
        self,
        message_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> NotificationEntry:
        company = None if principal.role is StaffRole.regulator else principal.company_id
        message = await service.retry_dead(
            db,
            parse_id(message_id, what="消息"),
            by=f"staff:{principal.staff_id}",
            now=clock.now(),
            company_id=company,
            only_company=principal.role is not StaffRole.regulator,
        )
        return NotificationEntry.of(message)


class SmsReceiptController(Controller):
    """The SMS provider's delivery-receipt callback (Alibaba Cloud SmsReport HTTP push,
    Tencent Cloud 短信回执). Neither provider signs these, so the URL carries a secret of
    ours, given to the provider with the callback URL."""

    path = "/api/v1/webhooks/sms"
    tags = ("notifications",)

    @post("/{token:str}", status_code=200, summary="短信状态回执 (the provider's callback)")
    async def receipts(
        self,
        token: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        sms: NamedDependency[SmsChannel],
        sms_receipt_token: NamedDependency[str],
    ) -> dict[str, object]:
        if not hmac.compare_digest(token.encode(), sms_receipt_token.encode()):
            raise DomainError.not_found("回执地址")
        try:
            statuses = sms.receipts(await request.body())
        except ValueError:
            raise DomainError("sms_receipt_invalid", "短信回执内容不符合短信平台的格式。") from None
        await record_receipts(db, statuses, now=clock.now())
        return sms.receipt_answer()
