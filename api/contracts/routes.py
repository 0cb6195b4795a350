"""Contract order routes: agents create, issue and void; buyers scan, sign or decline;
seal keepers seal; parties and staff read status, timeline, document and evidence; the
public checks a contract by number and password."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas, service
from api.contracts.keystore import Keystore
from api.contracts.models import OrderStatus
from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.ratelimit import RateLimiter
from api.identity.clients import IdentityClients
from api.identity.models import StaffRole
from api.identity.routes import citizens_only, logged_in, staff_only, staff_roles
from api.identity.service import Principal
from api.settings import Settings
from signing.qr import qr_png, qr_svg

agents_only = staff_roles(StaffRole.sales_agent)
seal_keepers_only = staff_roles(StaffRole.seal_keeper)
ORDER = "合同订单"
# Wrong contract passwords allowed per contract number and per IP address, per hour.
VERIFY_FAILURES_PER_NUMBER = 5
VERIFY_FAILURES_PER_IP = 20


def _client(request: Request[Any, Any, Any]) -> service.Client:
    return service.Client(
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
    ) -> schemas.OrderOut:
        return await service.create_order(db, keys, principal, data, now=clock.now())

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
        return await service.list_orders(
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
    ) -> schemas.OrderOut:
        _, answer = await service.order_for(
            db, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )
        return answer

    @post("/{order_id:str}/issue", status_code=200, guards=[agents_only], summary="生成签约二维码")
    async def issue(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
    ) -> schemas.Issued:
        return await service.issue_order(
            db,
            keys,
            principal,
            parse_id(order_id, what=ORDER),
            now=clock.now(),
            public_base_url=settings.public_base_url,
        )

    @post("/{order_id:str}/void", status_code=200, guards=[agents_only], summary="作废合同订单")
    async def void(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.Reason],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderOut:
        return await service.void_order(
            db, principal, parse_id(order_id, what=ORDER), reason=data.reason, now=clock.now()
        )

    async def _scan_url(
        self, db: AsyncSession, principal: Principal, order_id: str, clock: Clock, base: str
    ) -> str:
        scene = await service.scene_of(
            db, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )
        return f"{base.rstrip('/')}/miniapp/#/scan/{scene}"

    @get("/{order_id:str}/qr.png", guards=[staff_only], summary="签约二维码 (PNG)")
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

    @get("/{order_id:str}/qr.svg", guards=[staff_only], summary="签约二维码 (SVG)")
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
        identity_clients: NamedDependency[IdentityClients],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeOut:
        return await service.signature_challenge(
            db,
            keys,
            identity_clients.sms,
            principal,
            parse_id(order_id, what=ORDER),
            now=clock.now(),
        )

    @post(
        "/{order_id:str}/signatures",
        status_code=200,
        guards=[citizens_only],
        summary="签署合同 (buyer)",
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[schemas.SignIn],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        keystore: NamedDependency[Keystore],
        principal: NamedDependency[Principal],
    ) -> schemas.Signed:
        return await service.sign(
            db,
            keys,
            keystore,
            principal,
            parse_id(order_id, what=ORDER),
            data,
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
    ) -> schemas.OrderOut:
        return await service.decline(
            db, principal, parse_id(order_id, what=ORDER), reason=data.reason, now=clock.now()
        )

    @post(
        "/{order_id:str}/password",
        status_code=200,
        guards=[citizens_only],
        summary="查看合同密码 (each buyer, once)",
    )
    async def password(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> Response[schemas.PasswordOnce]:
        shown = await service.reveal_password(
            db, keys, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )
        return Response(shown, headers={"Cache-Control": "no-store"})

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
        identity_clients: NamedDependency[IdentityClients],
        principal: NamedDependency[Principal],
    ) -> schemas.ChallengeOut:
        return await service.seal_challenge(
            db,
            keys,
            identity_clients.sms,
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
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        keystore: NamedDependency[Keystore],
        principal: NamedDependency[Principal],
    ) -> Response[schemas.Sealed]:
        sealed = await service.seal(
            db,
            keys,
            keystore,
            principal,
            parse_id(order_id, what=ORDER),
            data,
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
        return await service.events(db, principal, parse_id(order_id, what=ORDER), now=clock.now())

    @get("/{order_id:str}/document", guards=[logged_in], summary="合同文本 (canonical JSON)")
    async def document(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.DocumentOut:
        return await service.document(
            db, principal, parse_id(order_id, what=ORDER), now=clock.now()
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
        return await service.evidence(
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
    clock: NamedDependency[Clock],
    principal: NamedDependency[Principal],
) -> schemas.ScanAnswer:
    return await service.scan(db, principal, scene=data.scene.strip(), now=clock.now())


@get("/api/v1/public/verify", tags=["public"], summary="合同查询 (number + password)")
async def public_verify(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    keys: NamedDependency[ServiceKeys],
    limiter: NamedDependency[RateLimiter],
    number: Annotated[str, Parameter(min_length=1, max_length=32)],
    password: Annotated[str, Parameter(min_length=1, max_length=16)],
) -> Response[schemas.VerifyAnswer]:
    ip = request.client.host if request.client else "unknown"
    key = number.strip().upper()
    hour = 3600
    await limiter.peek("verify-number", key, limit=VERIFY_FAILURES_PER_NUMBER, window_seconds=hour)
    await limiter.peek("verify-ip", ip, limit=VERIFY_FAILURES_PER_IP, window_seconds=hour)
    answer = await service.verify_contract(db, keys, number=number, password=password)
    if not answer.genuine:
        await limiter.hit("verify-number", key, limit=10**9, window_seconds=hour)
        await limiter.hit("verify-ip", ip, limit=10**9, window_seconds=hour)
    return Response(answer, headers={"Cache-Control": "no-store"})


ROUTES = [ContractController, scan, public_verify]
