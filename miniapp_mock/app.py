"""The mock outside services as one Litestar app: `create_mock_app(settings) -> Litestar`.

Routes carry no ``/mock`` prefix; the main app mounts this app there. All state lives in
memory in the `MockServices` of one app instance (also reachable as
``app.state.mock_services`` for tests). Services: SMS gateway (`sms_gateway`), WeChat API
(`wechat`), identity provider (`idcheck`), face verification (`face`).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Litestar
from litestar.di import Provide

from miniapp_mock import bank, face, idcheck, sms_gateway, wechat
from miniapp_mock._common import Clock, utc_now

__all__ = ["MockServices", "MockSettings", "create_mock_app"]


class MockSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Credentials the Wangqian API uses with each mock service, and where things live."""

    sms_access_key: str
    sms_secret: str
    wechat_appid: str
    wechat_secret: str
    idcheck_key: str
    face_key: str
    # Where this app is reachable from a browser, including the mount prefix.
    public_base_url: str = "http://127.0.0.1:8000/mock"
    # The Wangqian site that face verification may redirect back to ("" allows any).
    api_public_base: str = "http://127.0.0.1:8000"
    # The mock national ID database: ID number -> name.
    people: dict[str, str] = msgspec.field(default_factory=dict)
    # The secret the mock bank signs its webhooks with (miniapp_mock.bank).
    bank_webhook_secret: str = ""


@dataclass
class MockServices:
    sms: sms_gateway.SmsGatewayState
    wechat: wechat.WeChatState
    idcheck: idcheck.IdRegistryState
    face: face.FaceState


def create_mock_app(settings: MockSettings, *, clock: Clock | None = None) -> Litestar:
    """A fresh mock app with empty state. `clock` returns aware UTC datetimes."""
    now = clock or utc_now
    registry = idcheck.IdRegistryState(key=settings.idcheck_key, people=dict(settings.people))
    services = MockServices(
        sms=sms_gateway.SmsGatewayState(access_key=settings.sms_access_key,
                                        secret=settings.sms_secret, clock=now),
        wechat=wechat.WeChatState(appid=settings.wechat_appid, secret=settings.wechat_secret,
                                  clock=now),
        idcheck=registry,
        face=face.FaceState(key=settings.face_key, clock=now,
                            public_base_url=settings.public_base_url,
                            api_public_base=settings.api_public_base, registry=registry),
    )

    def provider(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    app = Litestar(
        route_handlers=[*sms_gateway.ROUTES, *wechat.ROUTES, *idcheck.ROUTES, *face.ROUTES],
        dependencies={
            "sms_gateway": provider(services.sms),
            "wechat": provider(services.wechat),
            "id_registry": provider(services.idcheck),
            "face": provider(services.face),
        },
        # The mock is not part of our documented API surface.
        openapi_config=None,
    )
    app.state.mock_services = services
    bank.install(app, settings, now)  # the supervising bank: app.state.mock_bank
    return app
