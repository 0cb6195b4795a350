"""``create_app(settings)``: the Litestar application. Nothing runs at import time."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.response import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock, SystemClock
from api.core.docs import ServerRenderedDocs
from api.core.idempotency import IdempotencyMiddleware
from api.core.keys import ServiceKeys
from api.core.logging import RequestLogMiddleware, configure_logging
from api.core.problems import EXCEPTION_HANDLERS, ProblemError
from api.db.engine import Database, create_database
from api.public.routes import PublicController
from api.settings import Settings

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
        raise ProblemError(503, "database_unavailable", "数据库暂时不可用。") from None
    return Response({"status": "ready", "database": database.engine.dialect.name})


def create_app(
    settings: Settings, *, clock: Clock | None = None, database: Database | None = None
) -> Litestar:
    configure_logging(settings.log_level, json_lines=settings.log_json)
    clock = clock or SystemClock()
    database = database or create_database(settings)
    keys = ServiceKeys.from_master(settings.master_secret())

    route_handlers: list[Any] = [healthz, readyz, PublicController]
    if settings.mocks_enabled:
        route_handlers.extend(_mock_handlers(settings))

    async def dispose_database() -> None:
        await database.dispose()

    return Litestar(
        route_handlers=route_handlers,
        state=State({"database": database, "settings": settings}),
        dependencies={
            "db": Provide(provide_db),
            "clock": Provide(lambda: clock, use_cache=True, sync_to_thread=False),
            "keys": Provide(lambda: keys, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
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
        on_shutdown=[dispose_database],
        debug=False,
        request_max_body_size=4 * 1024 * 1024,
    )


def _mock_handlers(settings: Settings) -> list[Any]:
    """Mount the stand-ins for outside services under /mock (demo and tests only)."""
    from litestar.handlers import asgi

    from api.demo import PEOPLE
    from miniapp_mock.app import MockSettings, create_mock_app
    from signing.pii import derive_key

    master = settings.master_secret()

    def credential(name: str) -> str:
        # Demo credentials derive from the master secret so nothing is hard-coded.
        return derive_key(master, f"mock-{name}").hex()

    mock_app = create_mock_app(
        MockSettings(
            sms_access_key="wangqian-demo",
            sms_secret=credential("sms"),
            wechat_appid="wx" + credential("wechat-appid")[:16],
            wechat_secret=credential("wechat"),
            idcheck_key=credential("idcheck"),
            face_key=credential("face"),
            public_base_url=settings.public_base_url.rstrip("/") + "/mock",
            api_public_base=settings.public_base_url,
            people={person.id_number: person.name for person in PEOPLE},
        )
    )

    @asgi("/mock", is_mount=True, copy_scope=True, include_in_schema=False)
    async def mock_mount(scope: Any, receive: Any, send: Any) -> None:
        await mock_app(scope, receive, send)

    return [mock_mount]


def create_app_from_env() -> Litestar:
    """Factory for the server (granian): settings from ``WANGQIAN_*`` variables."""
    return create_app(Settings.from_env())


__all__ = ["MediaType", "create_app", "create_app_from_env"]
