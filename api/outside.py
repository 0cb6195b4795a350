"""The outside world: WeChat, the SMS provider, the identity and face providers and the bank.

Built once from settings, and here alone is it decided whether each is the real service or
the demo's stand-in from ``miniapp_mock``. Every provider speaks its own published wire
protocol, and so does its mock, so switching from the mock to the real service is a
change of settings: the provider (``WANGQIAN_SMS_PROVIDER=aliyun``), its credentials and,
where it is not the provider's public host, its endpoint. With mocks enabled, each service
left unconfigured means its mock under ``PUBLIC_BASE_URL/mock`` with credentials derived
from the master secret (nothing hard-coded), while a service configured explicitly is the
real one; with mocks off, a service left unconfigured answers 503 (messages fail with a
clear code in the delivery log).

Every client shares one ``httpx.AsyncClient``. Tests give it an ``httpx.ASGITransport``, so
the calls reach the mocks in process, without sockets; the demo calls them over loopback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.core.clock import Clock
from api.identity.clients import WeChatClient
from api.identity.face_providers import (
    FACEID_ENDPOINT,
    FACEID_VERSION,
    FaceCheck,
    IdCheck,
    TencentCloud,
    TencentFaceId,
    TencentIdCheck,
    UnconfiguredFace,
    UnconfiguredIdCheck,
    WeChatFaceVerification,
)
from api.settings import Settings
from notifications import aliyun_sms, tencent_sms
from notifications.sms import (
    ProviderTemplate,
    SmsChannel,
    UnconfiguredSmsChannel,
    parse_template_codes,
)
from notifications.templates import TEMPLATES, sms_variables
from notifications.wechat import WeChatSubscribeChannel, WeChatTokenSource
from notifications.wechat_templates import WeChatTemplate, parse_wechat_templates
from signing.pii import derive_key
from signing.tsa import TimestampError

log = logging.getLogger("wangqian.outside")

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MOCK_SIGN_NAME = "网签演示"


@dataclass(frozen=True)
class ServiceCredentials:
    """The demo's credentials of the outside services; the mocks expect the same ones."""

    sms_access_key: str
    sms_secret: str
    sms_app_id: str
    wechat_appid: str
    wechat_secret: str
    faceid_secret_id: str
    faceid_secret_key: str
    face_rule_id: str
    bank_gateway_secret: str
    bank_pay_link_secret: str


def mock_credentials(settings: Settings) -> ServiceCredentials:
    """Derived from the master secret: the clients use them and the mounted mocks expect
    them, so both sides come from this one function."""
    master = settings.master_secret()

    def credential(name: str) -> str:
        return derive_key(master, f"mock-{name}").hex()

    return ServiceCredentials(
        sms_access_key="LTAI" + credential("sms-id")[:20],
        sms_secret=credential("sms"),
        sms_app_id="1400" + str(int(credential("sms-app")[:8], 16) % 10**6).zfill(6),
        wechat_appid="wx" + credential("wechat-appid")[:16],
        wechat_secret=credential("wechat"),
        faceid_secret_id="AKID" + credential("faceid-id")[:32],
        faceid_secret_key=credential("faceid"),
        face_rule_id="1",
        bank_gateway_secret=credential("bank-gateway"),
        bank_pay_link_secret=credential("bank-pay-link"),
    )


def mock_bank_webhook_secret(settings: Settings) -> str:
    """What the mock bank signs its webhooks with. The label predates this module; kept so
    that existing demo data directories still accept the mock bank's webhooks."""
    return derive_key(settings.master_secret(), "bank-webhook-demo").hex()


def mock_sms_templates() -> dict[str, ProviderTemplate]:
    """The codes under which the mock SMS provider has "approved" our templates."""
    return {
        key: ProviderTemplate(f"SMS_{465000001 + index}", template.variables)
        for index, (key, template) in enumerate(sorted(TEMPLATES.items()))
    }


def mock_sms_specs() -> list[Any]:
    """Our templates as the mock SMS provider has them approved (its TemplateSpecs)."""
    from miniapp_mock.sms_gateway import TemplateSpec

    return [
        TemplateSpec(
            code=registered.code,
            name=key,
            text=TEMPLATES[key].sms.replace("{", "${"),
            verification=TEMPLATES[key].verification,
        )
        for key, registered in mock_sms_templates().items()
    ]


def mock_wechat_templates() -> dict[str, WeChatTemplate]:
    """The mock mini program's subscribe templates (ids derived from our keys)."""
    return {
        key: WeChatTemplate(key, f"mock-{key.replace('_', '-')}", t.wechat.page, t.wechat.data)
        for key, t in TEMPLATES.items()
        if t.wechat is not None and not t.urgent
    }


@dataclass(frozen=True)
class BankLink:
    """The supervising bank's ends: the secrets its webhooks are signed with (two at once
    while rotating; none means webhooks answer 503), its certificate (certificate-signed
    webhooks), the payment page a notice's QR code opens with the key its links are signed
    with, and the gateway approved instructions are pushed to (empty: the bank pulls)."""

    webhook_secrets: tuple[str, ...]
    pay_page_base: str
    pay_link_secret: str = ""
    gateway_url: str = ""
    gateway_secret: str = ""
    webhook_certificate: str = ""


def bank_link(settings: Settings) -> BankLink:
    mocked = settings.mocks_enabled
    creds = mock_credentials(settings) if mocked else None
    secrets = tuple(s.strip() for s in settings.bank_webhook_secrets.split(",") if s.strip())
    if not secrets and mocked:
        secrets = (mock_bank_webhook_secret(settings),)
    mock_base = settings.public_base_url.rstrip("/") + "/mock/bank"
    pay_base = settings.bank_pay_url or (mock_base + "/pay" if mocked else "")
    gateway = settings.bank_gateway_url or (mock_base + "/gateway" if mocked else "")
    return BankLink(
        webhook_secrets=secrets,
        pay_page_base=pay_base,
        pay_link_secret=settings.bank_pay_link_secret
        or (creds.bank_pay_link_secret if creds else ""),
        gateway_url=gateway,
        gateway_secret=settings.bank_gateway_secret
        or (creds.bank_gateway_secret if creds else ""),
        webhook_certificate=settings.bank_webhook_certificate,
    )


@dataclass(frozen=True)
class SmsSetup:
    """The SMS channel and what start-up should say about it."""

    channel: SmsChannel
    provider: str  # aliyun, tencent, or "" when none is configured
    unmapped: tuple[str, ...] = ()


def _sms(settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float]) -> SmsSetup:
    provider = settings.sms_provider or ("mock" if settings.mocks_enabled else "")
    if provider == "mock":
        creds = mock_credentials(settings)
        channel = aliyun_sms.AliyunSmsChannel(
            settings.public_base_url.rstrip("/") + "/mock/sms/aliyun",
            creds.sms_access_key, creds.sms_secret, MOCK_SIGN_NAME, mock_sms_templates(),
            http, clock=clock,
        )
        return SmsSetup(channel, "aliyun")
    keys = settings.sms_access_key and settings.sms_secret
    if provider not in ("aliyun", "tencent") or not keys:
        return SmsSetup(UnconfiguredSmsChannel(), "")
    templates = parse_template_codes(settings.sms_template_codes, sms_variables())
    unmapped = tuple(sorted(set(TEMPLATES) - set(templates)))
    if provider == "aliyun":
        endpoint = settings.sms_endpoint or aliyun_sms.DEFAULT_ENDPOINT
        channel: SmsChannel = aliyun_sms.AliyunSmsChannel(
            endpoint, settings.sms_access_key, settings.sms_secret, settings.sms_sign_name,
            templates, http, clock=clock,
        )
    else:
        endpoint = settings.sms_endpoint or tencent_sms.DEFAULT_ENDPOINT
        channel = tencent_sms.TencentSmsChannel(
            endpoint, settings.sms_access_key, settings.sms_secret, settings.sms_app_id,
            settings.sms_sign_name, templates, http, region=settings.sms_region, clock=clock,
        )
    return SmsSetup(channel, provider, unmapped)


def _faceid(
    settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float], *,
    endpoint: str, secret_id: str, secret_key: str, mocked: bool,
) -> TencentCloud:
    if mocked:
        creds = mock_credentials(settings)
        endpoint = settings.public_base_url.rstrip("/") + "/mock/faceid"
        secret_id, secret_key = creds.faceid_secret_id, creds.faceid_secret_key
    return TencentCloud(
        endpoint or FACEID_ENDPOINT, secret_id, secret_key, "faceid", FACEID_VERSION,
        settings.faceid_region, http, clock,
    )


def _idcheck(settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float]) -> IdCheck:
    provider = settings.idcheck_provider or ("mock" if settings.mocks_enabled else "")
    if provider not in ("tencent", "mock"):
        return UnconfiguredIdCheck()
    return TencentIdCheck(
        _faceid(settings, http, clock, endpoint=settings.idcheck_endpoint,
                secret_id=settings.idcheck_secret_id, secret_key=settings.idcheck_secret_key,
                mocked=provider == "mock")
    )


def _face(
    settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float],
    tokens: WeChatTokenSource | None,
) -> FaceCheck:
    provider = settings.face_provider or ("mock" if settings.mocks_enabled else "")
    if provider == "wechat":
        return WeChatFaceVerification(tokens.base, tokens, http) if tokens else UnconfiguredFace()
    if provider not in ("tencent", "mock"):
        return UnconfiguredFace()
    mocked = provider == "mock"
    api = _faceid(settings, http, clock, endpoint=settings.face_endpoint,
                  secret_id=settings.face_secret_id, secret_key=settings.face_secret_key,
                  mocked=mocked)
    rule = mock_credentials(settings).face_rule_id if mocked else settings.face_rule_id
    return TencentFaceId(api, rule)


@dataclass(frozen=True)
class WeChatSetup:
    base: str
    appid: str
    secret: str
    templates: dict[str, WeChatTemplate]


def _wechat(settings: Settings) -> WeChatSetup:
    if settings.wechat_api_base:
        return WeChatSetup(
            settings.wechat_api_base.rstrip("/"), settings.wechat_appid, settings.wechat_secret,
            parse_wechat_templates(settings.wechat_templates),
        )
    if settings.mocks_enabled:
        creds = mock_credentials(settings)
        return WeChatSetup(
            settings.public_base_url.rstrip("/") + "/mock/wechat", creds.wechat_appid,
            creds.wechat_secret, mock_wechat_templates(),
        )
    return WeChatSetup("", "", "", {})


@dataclass(frozen=True)
class OutsideServices:
    wechat: WeChatClient
    idcheck: IdCheck
    face: FaceCheck
    sms: SmsChannel
    # Subscribe messages for the notification outbox; None when WeChat is not configured.
    wechat_messages: WeChatSubscribeChannel | None
    # Our template keys -> this mini program's subscribe templates (ids and data keys).
    wechat_templates: dict[str, WeChatTemplate]
    bank: BankLink
    sms_provider: str = ""
    # The secret path segment of the SMS receipt callback.
    sms_receipt_token: str = ""
    warnings: list[str] = field(default_factory=list)


def build_outside(
    settings: Settings, http: httpx.AsyncClient, *, unix_time: Callable[[], float] | None = None
) -> OutsideServices:
    """Every outside service over one shared HTTP client. ``unix_time`` (a callable giving
    Unix seconds) stamps signed requests; tests pass their movable clock's."""
    clock = unix_time or time.time
    sms = _sms(settings, http, clock)
    wechat = _wechat(settings)
    tokens = None
    if wechat.base and wechat.appid and wechat.secret:
        tokens = WeChatTokenSource(wechat.base, wechat.appid, wechat.secret, http)
    warnings = []
    if sms.unmapped:
        warnings.append(
            "SMS templates without a provider template code (WANGQIAN_SMS_TEMPLATE_CODES): "
            + ", ".join(sms.unmapped)
        )
    if not sms.provider:
        warnings.append("no SMS provider configured: every SMS fails (WANGQIAN_SMS_PROVIDER)")
    receipt_token = settings.sms_receipt_token or derive_key(
        settings.master_secret(), "sms-receipts"
    ).hex()[:32]
    return OutsideServices(
        wechat=WeChatClient(wechat.base, wechat.appid, wechat.secret, http),
        idcheck=_idcheck(settings, http, clock),
        face=_face(settings, http, clock, tokens),
        sms=sms.channel,
        wechat_messages=WeChatSubscribeChannel(tokens) if tokens else None,
        wechat_templates=wechat.templates if tokens else {},
        bank=bank_link(settings),
        sms_provider=sms.provider,
        sms_receipt_token=receipt_token,
        warnings=warnings,
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
            sms_app_id=creds.sms_app_id,
            sms_sign_name=MOCK_SIGN_NAME,
            sms_templates=mock_sms_specs(),
            wechat_appid=creds.wechat_appid,
            wechat_secret=creds.wechat_secret,
            wechat_templates={
                t.template_id: list(t.data) for t in mock_wechat_templates().values()
            },
            faceid_secret_id=creds.faceid_secret_id,
            faceid_secret_key=creds.faceid_secret_key,
            face_rule_id=creds.face_rule_id,
            public_base_url=settings.public_base_url.rstrip("/") + "/mock",
            api_public_base=settings.public_base_url,
            people=people,
            bank_webhook_secret=bank.webhook_secrets[0] if bank.webhook_secrets else "",
            bank_gateway_secret=creds.bank_gateway_secret,
            bank_pay_link_secret=creds.bank_pay_link_secret,
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
