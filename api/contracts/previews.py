"""What a scanned link says before anyone logs in (issue 19): which flat it is for, and
whether it can still be signed, so an expired, withdrawn or unknown link says so at once
instead of after a login, real-name and face check. It names no person and no price: a
link passed around tells no more than the building table does."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import (
    OPEN_CANCELLATION_STATUSES,
    ContractCancellation,
    ContractKind,
    ContractOrder,
    OrderStatus,
)
from api.contracts.queries import effective_status, get_order, unit_answer
from api.contracts.terms import terms_of
from api.core.errors import DomainError
from signing.qr import is_valid_scene

# Why a link cannot be used: the same words the scan answers with (api.contracts.signing).
_ENDED = {
    OrderStatus.expired: ("expired", "二维码已过期，请联系销售人员重新生成。"),
    OrderStatus.voided: ("voided", "该合同订单已作废。"),
}


async def scene_preview(
    session: AsyncSession, scene: str, *, now: datetime
) -> schemas.ScenePreview:
    unknown = DomainError("scene_unknown", "二维码无效或已失效。")
    if not is_valid_scene(scene):
        raise unknown
    order = await session.scalar(select(ContractOrder).where(ContractOrder.scene == scene))
    cancellation = None
    if order is None:
        cancellation = await session.scalar(
            select(ContractCancellation).where(ContractCancellation.scene == scene)
        )
        if cancellation is None:
            raise unknown
        order = await get_order(session, cancellation.order_id)
    terms = terms_of(order)
    status = effective_status(order, now)
    state, message = "open", None
    if cancellation is not None:
        if cancellation.status not in OPEN_CANCELLATION_STATUSES:
            state, message = "closed", "该注销申请已结束。"
    elif status in _ENDED:
        state, message = _ENDED[status]
    elif status is not OrderStatus.awaiting_signatures:
        state, message = "signed", "该合同已完成签署，可在「我的合同」中查看。"
    resale = order.kind is ContractKind.resale
    if cancellation is not None:
        title = "存量房买卖合同注销协议" if resale else "商品房买卖合同解除协议"
    else:
        title = terms.title
    return schemas.ScenePreview(
        kind="cancellation" if cancellation is not None else "contract",
        contract_kind=order.kind,
        title=title,
        unit=unit_answer(order.unit_id, terms.unit),
        state=state,
        message=message,
        expires_at=order.expires_at if state == "open" and cancellation is None else None,
    )
