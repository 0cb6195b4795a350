"""``create_app(settings)``: the Litestar application. Nothing runs at import time."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any

import httpx
from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.response import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.keystore import Keystore
from api.contracts.routes import ROUTES as CONTRACT_ROUTES
from api.contracts.service import expiry_sweep
from api.contracts.service import is_party as is_contract_party
from api.core.clock import Clock, SystemClock
from api.core.docs import ServerRenderedDocs
from api.core.errors import DomainError
from api.core.idempotency import IdempotencyMiddleware
from api.core.keys import ServiceKeys
from api.core.logging import RequestLogMiddleware, configure_logging
from api.core.problems import EXCEPTION_HANDLERS
from api.core.ratelimit import RateLimiter, create_store
from api.db.engine import Database, create_database
from api.escrow.routes import PARTY_CHECK_STATE, webhook_secrets
from api.escrow.routes import ROUTES as ESCROW_ROUTES
from api.identity.clients import build_clients, mock_credentials, new_http_client
from api.identity.routes import ROUTES as IDENTITY_ROUTES
from api.identity.routes import provide_principal
from api.identity.service import SessionPolicy
from api.outbox.routes import NotificationController
from api.outbox.worker import EmbeddedWorker, build_worker
from api.public.routes import PublicController
from api.settings import Settings
from notifications.templates import check_templates

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def provide_db(
    request: Request[Any, Any, Any], state: State
) -> AsyncGenerator[AsyncSession, None]:
    """One session per request, committed when the handler returns, rolled back if it raises."""
    database: Database = state.database
    maker = database.reader if request.method in READ_METHODS else database.writer
    async with maker() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        else:
            if session.in_transaction():
                await session.commit()


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, str]]:
    database: Database = state.database
    try:
        async with database.reader() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"; the detail goes to the log
        raise DomainError("database_unavailable", "数据库暂时不可用。") from None
    return Response({"status": "ready", "database": database.engine.dialect.name})


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    """The application. ``http_transport`` carries the outbound calls (WeChat, SMS,
    identity and face providers); tests pass an ``httpx.ASGITransport`` so those calls
    reach the mock services in process, without sockets."""
    configure_logging(settings.log_level, json_lines=settings.log_json)
    clock = clock or SystemClock()
    database = database or create_database(settings)
    keys = ServiceKeys.from_master(settings.master_secret())
    http = new_http_client(http_transport)
    clients = build_clients(settings, http, unix_time=lambda: clock.now().timestamp())
    limiter = RateLimiter(create_store(settings.redis_url), clock)
    check_templates()  # a template that cannot render stops the start, not a 3 a.m. send
    outbox = build_worker(
        database,
        keys,
        clock,
        sms=clients.sms,
        wechat=clients.wechat_messages,
        periodic=[expiry_sweep(database, clock)],
    )
    keystore = Keystore.from_settings(settings)  # opened (or created) on first use
    embedded = EmbeddedWorker(outbox, poll_seconds=settings.outbox_poll_seconds)

    async def start_worker() -> None:
        if settings.outbox_worker == "embedded":
            await embedded.start()

    session_policy = SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )

    route_handlers: list[Any] = [
        healthz,
        readyz,
        PublicController,
        *IDENTITY_ROUTES,
        NotificationController,
        *CONTRACT_ROUTES,
        *ESCROW_ROUTES,
    ]
    if settings.mocks_enabled:
        route_handlers.extend(_mock_handlers(settings, clock, http))

    async def close_resources() -> None:
        await embedded.stop()
        await http.aclose()
        await database.dispose()

    def constant(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    return Litestar(
        route_handlers=route_handlers,
        state=State(
            {
                "database": database,
                "settings": settings,
                "clock": clock,
                "session_policy": session_policy,
                "outbox": outbox,
                "keystore": keystore,
                # Escrow shows payment notices to a contract's parties without importing
                # contracts (which calls escrow on completion): the check is handed over here.
                PARTY_CHECK_STATE: is_contract_party,
            }
        ),
        dependencies={
            "db": Provide(provide_db),
            "clock": constant(clock),
            "keys": constant(keys),
            "settings": constant(settings),
            "identity_clients": constant(clients),
            "limiter": constant(limiter),
            "keystore": constant(keystore),
            "session_policy": constant(session_policy),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[
            RequestLogMiddleware,
            DefineMiddleware(
                IdempotencyMiddleware,
                database=database,
                clock=clock,
                ttl=settings.idempotency_ttl_seconds,
                lock_seconds=settings.idempotency_lock_seconds,
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Wangqian 网签 API",
            version="1",
            description="商品房及存量房网上签约：合同订单、扫码签名、盖章、资金监管、公开查询。",
            path="/api/docs",
            render_plugins=[
                ServerRenderedDocs(path="/"),
                JsonRenderPlugin(path="/openapi.json"),
                SwaggerRenderPlugin(path="/swagger"),
            ],
        ),
        on_startup=[start_worker],
        on_shutdown=[close_resources],
        debug=False,
        request_max_body_size=4 * 1024 * 1024,
    )


def _mock_handlers(settings: Settings, clock: Clock, http: httpx.AsyncClient) -> list[Any]:
    """Mount the stand-ins for outside services under /mock (demo and tests only)."""
    from litestar.handlers import asgi

    from api.demo import PEOPLE
    from miniapp_mock.app import MockSettings, create_mock_app

    # The same credentials the clients use (api.identity.clients.outbound_config).
    creds = mock_credentials(settings)
    mock_app = create_mock_app(
        MockSettings(
            sms_access_key=creds.sms_access_key,
            sms_secret=creds.sms_secret,
            wechat_appid=creds.wechat_appid,
            wechat_secret=creds.wechat_secret,
            idcheck_key=creds.idcheck_key,
            face_key=creds.face_key,
            public_base_url=settings.public_base_url.rstrip("/") + "/mock",
            api_public_base=settings.public_base_url,
            people={person.id_number: person.name for person in PEOPLE},
            bank_webhook_secret=(webhook_secrets(settings) or [""])[0],
        ),
        clock=clock.now,
    )
    mock_app.state.mock_bank.http = http  # bank webhooks go out like our own calls

    @asgi("/mock", is_mount=True, copy_scope=True, include_in_schema=False)
    async def mock_mount(scope: Any, receive: Any, send: Any) -> None:
        await mock_app(scope, receive, send)

    from miniapp_mock.h5 import pages_router

    # The mini program's H5 pages, under /miniapp/ (demo and tests only).
    return [mock_mount, pages_router()]


def create_app_from_env() -> Litestar:
    """Factory for the server (granian): settings from ``WANGQIAN_*`` variables."""
    return create_app(Settings.from_env())


__all__ = ["MediaType", "create_app", "create_app_from_env"]
