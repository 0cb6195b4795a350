"""The outside world: WeChat, the SMS gateway, the identity and face providers and the bank.

Built once from settings, and here alone is it decided whether each is the real service or
the demo's stand-in from ``miniapp_mock``: with mocks enabled, a service left unconfigured
means its mock under ``PUBLIC_BASE_URL/mock``, with credentials derived from the master
secret (nothing hard-coded); with mocks off, it means "not configured" (calls answer 503).

Every client shares one ``httpx.AsyncClient``. Tests give it an ``httpx.ASGITransport``, so
the calls reach the mocks in process, without sockets; the demo calls them over loopback.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from api.core.clock import Clock
from api.identity.clients import FaceClient, IdCheckClient, WeChatClient
from api.settings import Settings
from notifications.sms import HttpSmsChannel, SmsChannel, UnconfiguredSmsChannel
from notifications.wechat import WeChatSubscribeChannel
from signing.pii import derive_key
from signing.tsa import TimestampError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class ServiceCredentials:
    """Credentials of the outside services; the mocks are started with the same ones."""

    sms_access_key: str
    sms_secret: str
    wechat_appid: str
    wechat_secret: str
    idcheck_key: str
    face_key: str


def mock_credentials(settings: Settings) -> ServiceCredentials:
    """The demo's credentials, derived from the master secret: the clients use them and
    the mounted mocks expect them, so both sides come from this one function."""
    master = settings.master_secret()

    def credential(name: str) -> str:
        return derive_key(master, f"mock-{name}").hex()

    return ServiceCredentials(
        sms_access_key="wangqian-demo",
        sms_secret=credential("sms"),
        wechat_appid="wx" + credential("wechat-appid")[:16],
        wechat_secret=credential("wechat"),
        idcheck_key=credential("idcheck"),
        face_key=credential("face"),
    )


def mock_bank_webhook_secret(settings: Settings) -> str:
    """What the mock bank signs its webhooks with. The label predates this module; kept so
    that existing demo data directories still accept the mock bank's webhooks."""
    return derive_key(settings.master_secret(), "bank-webhook-demo").hex()


@dataclass(frozen=True)
class OutboundConfig:
    wechat_api_base: str
    sms_gateway_base: str
    idcheck_base: str
    face_base: str
    credentials: ServiceCredentials


def outbound_config(settings: Settings) -> OutboundConfig:
    """Bases and credentials from settings; with mocks enabled, empty ones mean the mock."""
    mock_base = settings.public_base_url.rstrip("/") + "/mock"
    mock = mock_credentials(settings) if settings.mocks_enabled else None

    def base(value: str, mock_path: str = "") -> str:
        if value:
            return value.rstrip("/")
        return mock_base + mock_path if mock is not None else ""

    def cred(value: str, name: str) -> str:
        if value or mock is None:
            return value
        return str(getattr(mock, name))

    return OutboundConfig(
        wechat_api_base=base(settings.wechat_api_base, "/wechat"),
        sms_gateway_base=base(settings.sms_gateway_base),
        idcheck_base=base(settings.idcheck_base),
        face_base=base(settings.face_base),
        credentials=ServiceCredentials(
            sms_access_key=cred(settings.sms_access_key, "sms_access_key"),
            sms_secret=cred(settings.sms_secret, "sms_secret"),
            wechat_appid=cred(settings.wechat_appid, "wechat_appid"),
            wechat_secret=cred(settings.wechat_secret, "wechat_secret"),
            idcheck_key=cred(settings.idcheck_key, "idcheck_key"),
            face_key=cred(settings.face_key, "face_key"),
        ),
    )


@dataclass(frozen=True)
class BankLink:
    """The supervising bank's two ends: the secrets its webhooks are signed with (two at
    once while rotating; none means webhooks answer 503) and the payment page a notice's
    QR code opens (empty means none is configured)."""

    webhook_secrets: tuple[str, ...]
    pay_page_base: str


def bank_link(settings: Settings) -> BankLink:
    secrets = tuple(s.strip() for s in settings.bank_webhook_secrets.split(",") if s.strip())
    if not secrets and settings.mocks_enabled:
        secrets = (mock_bank_webhook_secret(settings),)
    pay_base = settings.bank_pay_url
    if not pay_base and settings.mocks_enabled:
        pay_base = settings.public_base_url.rstrip("/") + "/mock/bank/pay"
    return BankLink(webhook_secrets=secrets, pay_page_base=pay_base)


@dataclass(frozen=True)
class OutsideServices:
    wechat: WeChatClient
    idcheck: IdCheckClient
    face: FaceClient
    sms: SmsChannel
    # Subscribe messages for the notification outbox; None when WeChat is not configured.
    wechat_messages: WeChatSubscribeChannel | None
    bank: BankLink


def build_outside(
    settings: Settings, http: httpx.AsyncClient, *, unix_time: Callable[[], float] | None = None
) -> OutsideServices:
    """Every outside service over one shared HTTP client. ``unix_time`` (a callable giving
    Unix seconds) stamps SMS gateway requests; tests pass their movable clock's."""
    config = outbound_config(settings)
    creds = config.credentials
    sms: SmsChannel = UnconfiguredSmsChannel()
    if config.sms_gateway_base and creds.sms_access_key and creds.sms_secret:
        sms = HttpSmsChannel(
            config.sms_gateway_base,
            creds.sms_access_key,
            creds.sms_secret,
            http,
            clock=unix_time or time.time,
        )
    wechat_messages = None
    if config.wechat_api_base and creds.wechat_appid and creds.wechat_secret:
        wechat_messages = WeChatSubscribeChannel(
            config.wechat_api_base, creds.wechat_appid, creds.wechat_secret, http
        )
    return OutsideServices(
        wechat=WeChatClient(config.wechat_api_base, creds.wechat_appid, creds.wechat_secret, http),
        idcheck=IdCheckClient(config.idcheck_base, creds.idcheck_key, http),
        face=FaceClient(config.face_base, creds.face_key, http),
        sms=sms,
        wechat_messages=wechat_messages,
        bank=bank_link(settings),
    )


def new_http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False)


def mock_routes(
    settings: Settings, clock: Clock, http: httpx.AsyncClient, *, people: dict[str, str]
) -> list[Any]:
    """The stand-ins for the outside services under /mock and the mini program's H5 pages
    under /miniapp (demo and tests only). ``people`` (ID number -> name) is what the mock
    identity provider knows."""
    from litestar.handlers import asgi

    from miniapp_mock.app import MockSettings, create_mock_app
    from miniapp_mock.h5 import pages_router

    creds = mock_credentials(settings)
    bank = bank_link(settings)
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
            people=people,
            bank_webhook_secret=bank.webhook_secrets[0] if bank.webhook_secrets else "",
        ),
        clock=clock.now,
    )
    mock_app.state.mock_bank.http = http  # bank webhooks go out like our own calls

    @asgi("/mock", is_mount=True, copy_scope=True, include_in_schema=False)
    async def mock_mount(scope: Any, receive: Any, send: Any) -> None:
        await mock_app(scope, receive, send)

    return [mock_mount, pages_router()]


def tsa_transport(
    settings: Settings, http: httpx.AsyncClient
) -> Callable[[bytes], Awaitable[bytes]] | None:
    """The outside time-stamping authority (RFC 3161 over HTTP, section 3.4) when
    ``WANGQIAN_TSA_URL`` names one; None means the platform's own TSA, in process."""
    if not settings.tsa_url:
        return None
    url = settings.tsa_url

    async def post(request_der: bytes) -> bytes:
        try:
            response = await http.post(
                url,
                content=request_der,
                headers={"Content-Type": "application/timestamp-query"},
                timeout=settings.tsa_timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise TimestampError(f"the time-stamping authority is unreachable: {error}") from None
        if response.status_code != 200:
            raise TimestampError(f"the time-stamping authority answered {response.status_code}")
        return response.content

    return post
