"""``create_app(settings)``: the Litestar application. Nothing runs at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import Response
from litestar.types import ASGIApp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.orders import expiry_sweep
from api.contracts.pdfs import (
    ContractPdfs,
    contract_font,
    first_revision_sweep,
    signed_pdf_sweep,
    start_typesetter,
    stop_typesetter,
)
from api.contracts.policy import ContractPolicy
from api.contracts.routes import ROUTES as CONTRACT_ROUTES
from api.contracts.sealing import seal_reminder_sweep
from api.core.clock import Clock, SystemClock
from api.core.docs import JsonSchemaWithProblems, ServerRenderedDocs
from api.core.errors import DomainError
from api.core.idempotency import IdempotencyMiddleware, purge_expired
from api.core.keys import ServiceKeys
from api.core.logging import RequestLogMiddleware, configure_logging
from api.core.problems import EXCEPTION_HANDLERS
from api.core.ratelimit import RateLimiter, create_store
from api.core.read_cache import ReadCache, create_board
from api.core.request_guard import PathGuardMiddleware
from api.core.versions import committed_versions
from api.db.engine import Database, create_database
from api.escrow.bank_gateway import instruction_push
from api.escrow.payment_batches import PaymentGroups
from api.escrow.routes import ROUTES as ESCROW_ROUTES
from api.escrow.webhook_intake import WebhookIntake
from api.identity.authentication import (
    BearerAuthentication,
    idempotency_caller,
    provide_principal,
)
from api.identity.routes import ROUTES as IDENTITY_ROUTES
from api.identity.sessions import SessionPolicy
from api.outbox.routes import NotificationController, SmsReceiptController
from api.outbox.worker import EmbeddedWorker, build_worker
from api.outside import OutsideServices, build_outside, mock_routes, new_http_client
from api.public.routes import ROUTES as PUBLIC_ROUTES
from api.public.routes import PublicReads
from api.register.routes import ROUTES as REGISTER_ROUTES
from api.settings import Settings
from notifications.templates import check_templates

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("wangqian.app")


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
        finally:
            # Before the answer leaves, so whoever reads next, on any node, sees the change
            # (this process's own cache heard of it at the commit).
            read_cache: ReadCache | None = state.get("read_cache")
            if read_cache is not None:
                await read_cache.publish(committed_versions(session))


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
    outside = build_outside(settings, http, unix_time=lambda: clock.now().timestamp())
    check_templates()  # a template that breaks a provider rule stops the start
    for warning in outside.warnings:
        log.warning(warning)
    # Checks the PDF font now: a font that cannot typeset Chinese stops the start.
    pdfs = ContractPdfs.build(settings, http, clock)
    jobs = periodic_jobs(database, clock, keys, outside, http, pdfs=pdfs)
    outbox = build_worker(database, keys, clock, outside=outside, periodic=jobs)
    embedded = EmbeddedWorker(outbox, poll_seconds=settings.outbox_poll_seconds)
    session_policy = SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )

    async def start_worker() -> None:
        if settings.outbox_worker == "embedded":
            await embedded.start()

    read_cache = ReadCache(database, create_board(settings.redis_url, database), clock)

    async def close_resources() -> None:
        stop_typesetter()  # first: nothing below may keep the process from exiting
        await embedded.stop()
        await http.aclose()
        await read_cache.close()
        await database.dispose()

    return Litestar(
        route_handlers=_route_handlers(settings, clock, http),
        state=State(
            {
                "database": database,
                "settings": settings,
                "clock": clock,
                "outbox": outbox,
                "read_cache": read_cache,
            }
        ),
        dependencies=_dependencies(
            settings, database, clock, keys, outside, session_policy, http, read_cache, pdfs
        ),
        middleware=[
            RequestLogMiddleware,
            PathGuardMiddleware,
            DefineMiddleware(
                BearerAuthentication, database=database, clock=clock, policy=session_policy
            ),
            # After authentication: a key is the principal's, never the raw token's.
            DefineMiddleware(
                IdempotencyMiddleware,
                database=database,
                clock=clock,
                ttl=settings.idempotency_ttl_seconds,
                lock_seconds=settings.idempotency_lock_seconds,
                caller=idempotency_caller,
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi_config(),
        on_startup=[start_worker],
        on_shutdown=[close_resources],
        debug=False,
        request_max_body_size=4 * 1024 * 1024,
    )


def _route_handlers(settings: Settings, clock: Clock, http: httpx.AsyncClient) -> list[Any]:
    route_handlers: list[Any] = [
        healthz,
        readyz,
        *PUBLIC_ROUTES,
        *IDENTITY_ROUTES,
        NotificationController,
        SmsReceiptController,
        *CONTRACT_ROUTES,
        *ESCROW_ROUTES,
        *REGISTER_ROUTES,
    ]
    if settings.mocks_enabled:
        from api.demo import PEOPLE  # the people the mock identity provider knows

        people = {person.id_number: person.name for person in PEOPLE}
        route_handlers.extend(mock_routes(settings, clock, http, people=people))
    return route_handlers


def periodic_jobs(
    database: Database,
    clock: Clock,
    keys: ServiceKeys,
    outside: OutsideServices,
    http: httpx.AsyncClient,
    *,
    pdfs: ContractPdfs,
) -> list[Callable[[], Awaitable[object]]]:
    """What the worker loop does besides messages: expire overdue orders, remind seal
    keepers of orders waiting for their seal, push approved instructions to the bank's
    gateway, purge expired idempotency records, finish the PDF of contracts whose finishing
    a crash interrupted, typeset the PDF of newly issued orders before their first
    signature."""
    bank = outside.bank
    return [
        expiry_sweep(database, clock),
        seal_reminder_sweep(database, clock, keys),
        instruction_push(database, keys, clock.now, http, bank.gateway_url, bank.gateway_secret),
        purge_expired(database, clock),
        signed_pdf_sweep(database, pdfs, clock),
        # Last: it may take seconds of typesetting, which the jobs above need not wait for.
        first_revision_sweep(database, pdfs.font, clock),
    ]


def _dependencies(
    settings: Settings,
    database: Database,
    clock: Clock,
    keys: ServiceKeys,
    outside: OutsideServices,
    session_policy: SessionPolicy,
    http: httpx.AsyncClient,
    read_cache: ReadCache,
    pdfs: ContractPdfs,
) -> dict[str, Provide]:
    """What handlers may ask for by name; each outside service is a dependency of its own."""

    def constant(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    limiter = RateLimiter(create_store(settings.redis_url), clock)

    return {
        "db": Provide(provide_db),
        # For work that must stay outside the request's transaction (a signature's PDF).
        "database": constant(database),
        "principal": Provide(provide_principal, sync_to_thread=False),
        "clock": constant(clock),
        "keys": constant(keys),
        "settings": constant(settings),
        "limiter": constant(limiter),
        "public_reads": constant(PublicReads(read_cache, clock, keys, limiter)),
        "keystore": constant(pdfs.keystore),  # opened on first use
        "pdfs": constant(pdfs),
        "session_policy": constant(session_policy),
        "policy": constant(ContractPolicy.from_settings(settings)),
        "sms": constant(outside.sms),
        "sms_receipt_token": constant(outside.sms_receipt_token),
        "wechat_templates": constant(outside.wechat_templates),
        "wechat": constant(outside.wechat),
        "idcheck": constant(outside.idcheck),
        "face": constant(outside.face),
        "bank": constant(outside.bank),
        "webhook_intake": constant(
            WebhookIntake(
                database,
                keys,
                clock,
                outside.bank,
                settings.bank_webhook_tolerance_seconds,
                PaymentGroups(database, keys),
            )
        ),
    }


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Wangqian 网签 API",
        version="1",
        description="商品房及存量房网上签约：合同订单、扫码签名、盖章、资金监管、公开查询。",
        path="/api/docs",
        render_plugins=[
            ServerRenderedDocs(path="/"),
            JsonSchemaWithProblems(path="/openapi.json"),
            SwaggerRenderPlugin(path="/swagger"),
        ],
    )


def create_app_from_env() -> ASGIApp:
    """Factory for the server (granian): settings from ``WANGQIAN_*`` variables."""
    settings = Settings.from_env()
    app = behind_proxies(create_app(settings), settings.trusted_proxies)
    start_typesetter(contract_font(settings))
    # Everything loaded so far (modules, routes, the app) lives as long as the process: out
    # of the collector's sight, each full collection no longer walks it. Those walks were
    # the slowest answers (bank webhooks under wrk: p99 150 to 97 ms, +10% req/s).
    gc.collect()
    gc.freeze()
    return app


def behind_proxies(app: ASGIApp, trusted_proxies: str) -> ASGIApp:
    """Behind a load balancer, the client is the address its X-Forwarded-For names, believed
    only from the balancers listed (anyone else could name any address)."""
    if not trusted_proxies.strip():
        return app
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    return wrap_asgi_with_proxy_headers(app, trusted_hosts=trusted_proxies)  # type: ignore[no-any-return]


__all__ = ["MediaType", "create_app", "create_app_from_env"]
