"""Contract order routes: agents create new homes' orders (a resale's seller creates theirs
in ``resale_routes``), and whoever created an order issues and voids it; parties scan,
sign or decline; seal keepers seal; parties and staff read status, timeline, document and
evidence."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import completion, orders, previews, reads, schemas, sealing, signing
from api.contracts.acts import Client
from api.contracts.cancellation_routes import ROUTES as CANCELLATION_ROUTES
from api.contracts.filing_routes import ROUTES as FILING_ROUTES
from api.contracts.keystore import Keystore
from api.contracts.models import OrderStatus
from api.contracts.pdfs import ContractPdfs
from api.contracts.policy import ContractPolicy
from api.contracts.resale_routes import ROUTES as RESALE_ROUTES
from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.ratelimit import RateLimiter
from api.db.engine import Database
from api.identity.guards import agents_only, citizens_only, logged_in, seal_keepers_only
from api.identity.principal import Principal
from api.settings import Settings
from notifications.sms import SmsChannel
from signing.qr import qr_png, qr_svg

ORDER = "合同订单"


def _client(request: Request[Any, Any, Any]) -> Client:
    return Client(
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )


class ContractController(Controller):
    path = "/api/v1/contracts"
    tags = ("contracts",)

    @post("", guards=[agents_only], summary="创建合同订单 (sales agent, one unit)")
    async def create(
        self,
        data: JSONBody[schemas.NewOrder],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await orders.create_order(db, keys, principal, data, now=clock.now())

    @get("", guards=[logged_in], summary="我的合同 / 本公司的合同订单")
    async def list_orders(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        status: FromQuery[OrderStatus | None] = None,
        project_id: Annotated[str | None, Parameter(max_length=64)] = None,
        unit_id: Annotated[str | None, Parameter(max_length=64)] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> schemas.OrderList:
        return await reads.list_orders(
            db,
            principal,
            now=clock.now(),
            status=status,
            project_id=parse_id(project_id, what="项目") if project_id else None,
            unit_id=parse_id(unit_id, what="户室") if unit_id else None,
            limit=limit,
            offset=offset,
        )

    @get("/{order_id:str}", guards=[logged_in], summary="合同订单详情")
    async def detail(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        _, answer = await reads.order_for(
            db, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )
        return answer

    @post(
        "/{order_id:str}/issue",
        status_code=200,
        guards=[logged_in],
        summary="生成签约二维码 (the agent, or the resale seller who made the order)",
    )
    async def issue(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.Issued:
        return await orders.issue_order(
            db, keys, principal, parse_id(order_id, what=ORDER), now=clock.now(), policy=policy
        )

    @post(
        "/{order_id:str}/void",
        status_code=200,
        guards=[logged_in],
        summary="作废合同订单 / 注销电子合同订单 (before it is a contract)",
    )
    async def void(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.Reason],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await orders.void_order(
            db, principal, parse_id(order_id, what=ORDER), reason=data.reason, now=clock.now()
        )

    async def _scan_url(
        self, db: AsyncSession, principal: Principal, order_id: str, clock: Clock, base: str
    ) -> str:
        scene = await reads.scene_of(db, principal, parse_id(order_id, what=ORDER), now=clock.now())
        return orders.scan_link(base, scene)

    @get("/{order_id:str}/qr.png", guards=[logged_in], summary="签约二维码 (PNG)")
    async def qr_png(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        url = await self._scan_url(db, principal, order_id, clock, settings.public_base_url)
        return Response(qr_png(url), media_type="image/png", headers={"Cache-Control": "no-store"})

    @get("/{order_id:str}/qr.svg", guards=[logged_in], summary="签约二维码 (SVG)")
    async def qr_svg(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
    ) -> Response[str]:
        url = await self._scan_url(db, principal, order_id, clock, settings.public_base_url)
        return Response(
            qr_svg(url), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )

    @post(
        "/{order_id:str}/signatures/challenge",
        status_code=200,
        guards=[citizens_only],
        summary="获取签署验证码 (SMS code bound to order, party and document hash)",
    )
    async def signature_challenge(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeAnswer:
        return await signing.signature_challenge(
            db,
            keys,
            sms,
            principal,
            parse_id(order_id, what=ORDER),
            policy=policy,
            now=clock.now(),
        )

    @post(
        "/{order_id:str}/signatures",
        status_code=200,
        guards=[citizens_only],
        summary="签署合同 (a buyer, or a resale's seller)",
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[schemas.SignIn],
        db: NamedDependency[AsyncSession],
        database: NamedDependency[Database],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        pdfs: NamedDependency[ContractPdfs],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> schemas.Signed:
        return await signing.sign(
            db,
            database,
            keys,
            pdfs,
            principal,
            parse_id(order_id, what=ORDER),
            data,
            policy=policy,
            client=_client(request),
            now=clock.now(),
        )

    @post(
        "/{order_id:str}/decline", status_code=200, guards=[citizens_only], summary="拒签 (buyer)"
    )
    async def decline(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.Reason],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await signing.decline(
            db, principal, parse_id(order_id, what=ORDER), reason=data.reason, now=clock.now()
        )

    @post(
        "/{order_id:str}/password",
        status_code=200,
        guards=[citizens_only],
        summary="查看合同密码 (once on asking, then after a fresh SMS code)",
    )
    async def password(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
        data: JSONBody[schemas.PasswordCode | None] = None,
    ) -> Response[schemas.PasswordOnce]:
        shown = await completion.reveal_password(
            db, keys, principal, parse_id(order_id, what=ORDER), code=data, now=clock.now()
        )
        # no-store: the idempotency store never keeps (nor replays) an answer with a secret.
        return Response(shown, headers={"Cache-Control": "no-store"})

    @post(
        "/{order_id:str}/password/challenge",
        status_code=200,
        guards=[citizens_only],
        summary="获取查看合同密码的短信验证码",
    )
    async def password_challenge(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        principal: NamedDependency[Principal],
    ) -> schemas.PasswordChallenge:
        return await completion.password_challenge(
            db, keys, sms, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )

    @post(
        "/{order_id:str}/seal/challenge",
        status_code=200,
        guards=[seal_keepers_only],
        summary="获取盖章验证码 (seal keeper)",
    )
    async def seal_challenge(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeAnswer:
        return await sealing.seal_challenge(
            db,
            keys,
            sms,
            principal,
            parse_id(order_id, what=ORDER),
            now=clock.now(),
        )

    @post(
        "/{order_id:str}/seal",
        status_code=200,
        guards=[seal_keepers_only],
        summary="合同盖章 (seal keeper); answers the contract number and password once",
    )
    async def seal(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[schemas.SealIn],
        db: NamedDependency[AsyncSession],
        database: NamedDependency[Database],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        pdfs: NamedDependency[ContractPdfs],
        policy: NamedDependency[ContractPolicy],
        principal: NamedDependency[Principal],
    ) -> Response[schemas.Sealed]:
        sealed = await sealing.seal(
            db,
            database,
            keys,
            pdfs,
            principal,
            parse_id(order_id, what=ORDER),
            data,
            policy=policy,
            client=_client(request),
            now=clock.now(),
        )
        return Response(sealed, headers={"Cache-Control": "no-store"})

    @get("/{order_id:str}/events", guards=[logged_in], summary="业务进度 (audit timeline)")
    async def events(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.EventList:
        return await reads.events(db, principal, parse_id(order_id, what=ORDER), now=clock.now())

    @get("/{order_id:str}/document", guards=[logged_in], summary="合同文本 (canonical JSON)")
    async def document(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.DocumentAnswer:
        return await reads.document(db, principal, parse_id(order_id, what=ORDER), now=clock.now())

    @post(
        "/{order_id:str}/document/opened",
        status_code=200,
        guards=[citizens_only],
        summary="已打开合同全文 (a party read the contract; kept in the timeline)",
    )
    async def document_opened(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.DocumentOpened],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OpenedAnswer:
        return await signing.document_opened(
            db, principal, parse_id(order_id, what=ORDER), data, now=clock.now()
        )

    @get("/{order_id:str}/pdf", guards=[logged_in], summary="签署版合同 PDF (PAdES, time-stamped)")
    async def pdf(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        name, data = await reads.signed_pdf(
            db, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )
        return Response(
            data,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )

    @get("/{order_id:str}/evidence", guards=[logged_in], summary="证据包 (verifies offline)")
    async def evidence(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keystore: NamedDependency[Keystore],
        principal: NamedDependency[Principal],
    ) -> dict[str, Any]:
        return await reads.evidence(
            db, keystore, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )


@post(
    "/api/v1/scan",
    status_code=200,
    guards=[citizens_only],
    tags=["contracts"],
    summary="扫码签约 (scene -> the order, my role in it, the document)",
)
async def scan(
    data: JSONBody[schemas.Scan],
    db: NamedDependency[AsyncSession],
    keys: NamedDependency[ServiceKeys],
    clock: NamedDependency[Clock],
    principal: NamedDependency[Principal],
) -> schemas.ScanAnswer:
    return await signing.scan(db, keys, principal, scene=data.scene.strip(), now=clock.now())


@get(
    "/api/v1/public/scenes/{scene:str}",
    tags=["public"],
    summary="扫码预览 (before logging in: which flat, and whether the link is still open)",
)
async def scene_preview(
    scene: FromPath[str],
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    limiter: NamedDependency[RateLimiter],
) -> schemas.ScenePreview:
    # Scenes are random; the limit keeps anyone from walking them.
    host = request.client.host if request.client else "unknown"
    await limiter.hit("scene-preview", host, limit=120, window_seconds=3600)
    return await previews.scene_preview(db, scene.strip(), now=clock.now())


ROUTES = [
    ContractController,
    scan,
    scene_preview,
    *FILING_ROUTES,
    *CANCELLATION_ROUTES,
    *RESALE_ROUTES,
]
