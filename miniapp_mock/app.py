"""The mock outside services as one Litestar app: `create_mock_app(settings) -> Litestar`.

Routes carry no ``/mock`` prefix; the main app mounts this app there. All state lives in
memory in the `MockServices` of one app instance (also reachable as
``app.state.mock_services`` for tests). Each speaks its provider's wire protocol: SMS
(Alibaba Cloud and Tencent Cloud, `sms_gateway`, `sms_aliyun`, `sms_tencent`), WeChat
(`wechat`, `wechat_face`), Tencent Cloud FaceID for the real-name and face checks
(`faceid`), and the supervising bank (`bank`).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Litestar
from litestar.di import Provide

from miniapp_mock import bank, faceid, sms_aliyun, sms_gateway, sms_tencent, wechat, wechat_face
from miniapp_mock._common import Clock, utc_now
from miniapp_mock.sms_gateway import TemplateSpec

__all__ = ["MockServices", "MockSettings", "create_mock_app"]


class MockSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Credentials the Wangqian API uses with each mock service, and where things live."""

    sms_access_key: str
    sms_secret: str
    wechat_appid: str
    wechat_secret: str
    faceid_secret_id: str
    faceid_secret_key: str
    face_rule_id: str = "1"
    # The SMS account's approved signature, Tencent SmsSdkAppId and approved templates.
    sms_sign_name: str = "网签演示"
    sms_app_id: str = "1400000000"
    sms_templates: list[TemplateSpec] = msgspec.field(default_factory=list)
    # The mini program's subscribe templates: template id -> its data keys.
    wechat_templates: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # Where this app is reachable from a browser, including the mount prefix.
    public_base_url: str = "http://127.0.0.1:8000/mock"
    # The Wangqian site that face verification may redirect back to.
    api_public_base: str = "http://127.0.0.1:8000"
    # The mock national ID database: ID number -> name.
    people: dict[str, str] = msgspec.field(default_factory=dict)
    # The secret the mock bank signs its webhooks with (miniapp_mock.bank), the one our
    # instructions to its gateway are signed with, and the one pay links are signed with.
    bank_webhook_secret: str = ""
    bank_gateway_secret: str = ""
    bank_pay_link_secret: str = ""


@dataclass
class MockServices:
    sms: sms_gateway.SmsGatewayState
    wechat: wechat.WeChatState
    faceid: faceid.FaceIdState


def create_mock_app(settings: MockSettings, *, clock: Clock | None = None) -> Litestar:
    """A fresh mock app with empty state. `clock` returns aware UTC datetimes."""
    now = clock or utc_now
    sms = sms_gateway.SmsGatewayState(
        access_key=settings.sms_access_key, secret=settings.sms_secret,
        sign_name=settings.sms_sign_name, app_id=settings.sms_app_id, clock=now,
    )
    for spec in settings.sms_templates:
        problems = sms.approve(spec)
        if problems:
            raise ValueError(f"mock SMS template {spec.code} refused: {problems}")
    services = MockServices(
        sms=sms,
        wechat=wechat.WeChatState(appid=settings.wechat_appid, secret=settings.wechat_secret,
                                  clock=now, templates=dict(settings.wechat_templates)),
        faceid=faceid.FaceIdState(
            secret_id=settings.faceid_secret_id, secret_key=settings.faceid_secret_key,
            rule_id=settings.face_rule_id, clock=now, public_base_url=settings.public_base_url,
            api_public_base=settings.api_public_base, people=dict(settings.people),
        ),
    )

    def provider(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    app = Litestar(
        route_handlers=[*sms_gateway.ROUTES, *sms_aliyun.ROUTES, *sms_tencent.ROUTES,
                        *wechat.ROUTES, *wechat_face.ROUTES, *faceid.ROUTES],
        dependencies={
            "sms_gateway": provider(services.sms),
            "wechat": provider(services.wechat),
            "faceid": provider(services.faceid),
        },
        # The mock is not part of our documented API surface.
        openapi_config=None,
    )
    app.state.mock_services = services
    bank.install(app, settings, now)  # the supervising bank: app.state.mock_bank
    return app
