"""Where the outside services are: the real providers as configured, or the mocks (which
speak the same protocols) when mocks are on and a service is left unconfigured."""

from __future__ import annotations

import httpx
import msgspec

from api.identity.face_providers import (
    TencentFaceId,
    TencentIdCheck,
    UnconfiguredFace,
    UnconfiguredIdCheck,
    WeChatFaceVerification,
)
from api.outside import (
    bank_link,
    build_outside,
    mock_bank_webhook_secret,
    mock_credentials,
)
from api.settings import Settings
from notifications.aliyun_sms import AliyunSmsChannel
from notifications.sms import UnconfiguredSmsChannel
from notifications.tencent_sms import TencentSmsChannel

HTTP = httpx.AsyncClient()


def test_with_mocks_every_unconfigured_service_is_its_mock(settings: Settings) -> None:
    mocked = build_outside(
        msgspec.structs.replace(settings, mocks_enabled=True, public_base_url="http://h:1/"), HTTP
    )
    assert isinstance(mocked.sms, AliyunSmsChannel)
    assert mocked.sms._endpoint == "http://h:1/mock/sms/aliyun/"
    assert mocked.sms._key_id == mock_credentials(settings).sms_access_key
    assert isinstance(mocked.idcheck, TencentIdCheck) and isinstance(mocked.face, TencentFaceId)
    assert mocked.face._api.endpoint == "http://h:1/mock/faceid"
    assert mocked.wechat_messages is not None and set(mocked.wechat_templates) == {
        "contract_signed", "deposit_arrived", "down_payment_arrived", "sign_invitation", "sign_reminder"}
    assert mocked.warnings == []


def test_a_provider_set_explicitly_replaces_only_its_own_mock(settings: Settings) -> None:
    configured = build_outside(
        msgspec.structs.replace(
            settings,
            mocks_enabled=True,
            sms_provider="tencent",
            sms_endpoint="http://127.0.0.1:9/sms",
            sms_access_key="AKID-city",
            sms_secret="city-secret",
            sms_app_id="1400000001",
            sms_sign_name="某市住建",
            sms_template_codes='{"one_time_code": "100001", "contract_signed": "100002"}',
        ),
        HTTP,
    )
    assert isinstance(configured.sms, TencentSmsChannel)
    assert configured.sms._endpoint == "http://127.0.0.1:9/sms/"
    assert configured.sms_provider == "tencent"
    # Templates without a code are named at start; sends of them fail in the delivery log.
    [warning] = configured.warnings
    assert "down_payment_arrived" in warning and "one_time_code" not in warning
    # The identity checks are still the mocks.
    assert isinstance(configured.idcheck, TencentIdCheck)
    assert configured.idcheck._api.endpoint.endswith("/mock/faceid")


def test_real_providers_default_to_their_public_hosts(settings: Settings) -> None:
    real = build_outside(
        msgspec.structs.replace(
            settings,
            sms_provider="aliyun",
            sms_access_key="LTAI-city",
            sms_secret="s",
            idcheck_provider="tencent",
            idcheck_secret_id="AKID",
            idcheck_secret_key="k",
            face_provider="wechat",
            wechat_api_base="https://api.weixin.qq.com",
            wechat_appid="wx1",
            wechat_secret="s",
        ),
        HTTP,
    )
    assert isinstance(real.sms, AliyunSmsChannel)
    assert real.sms._endpoint == "https://dysmsapi.aliyuncs.com/"
    assert isinstance(real.idcheck, TencentIdCheck)
    assert real.idcheck._api.endpoint == "https://faceid.tencentcloudapi.com"
    assert isinstance(real.face, WeChatFaceVerification)
    assert real.wechat_templates == {}  # none configured: no subscribe messages


def test_without_mocks_nothing_configured_means_unavailable(settings: Settings) -> None:
    off = build_outside(settings, HTTP)
    assert isinstance(off.sms, UnconfiguredSmsChannel)
    assert isinstance(off.idcheck, UnconfiguredIdCheck)
    assert isinstance(off.face, UnconfiguredFace)
    assert off.wechat_messages is None
    assert any("no SMS provider" in w for w in off.warnings)


def test_outside_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WANGQIAN_SMS_PROVIDER": "aliyun",
            "WANGQIAN_SMS_ENDPOINT": "http://127.0.0.1:8081",
            "WANGQIAN_SMS_TEMPLATE_CODES": '{"one_time_code": "SMS_1"}',
            "WANGQIAN_FACE_ENDPOINT": "http://127.0.0.1:8082",
            "WANGQIAN_FACE_PROVIDER": "tencent",
            "WANGQIAN_IDCHECK_ENDPOINT": "http://127.0.0.1:8083",
            "WANGQIAN_SESSION_IDLE_MINUTES": "15",
        }
    )
    assert settings.sms_provider == "aliyun" and settings.sms_endpoint == "http://127.0.0.1:8081"
    assert settings.face_endpoint == "http://127.0.0.1:8082"
    assert settings.idcheck_endpoint == "http://127.0.0.1:8083"
    assert settings.session_idle_minutes == 15


def test_the_bank_is_the_mock_only_when_mocks_are_on_and_nothing_is_configured(
    settings: Settings,
) -> None:
    mocked = bank_link(
        msgspec.structs.replace(settings, mocks_enabled=True, public_base_url="http://h:1/")
    )
    assert mocked.webhook_secrets == (mock_bank_webhook_secret(settings),)
    assert mocked.pay_page_base == "http://h:1/mock/bank/pay"
    assert mocked.gateway_url == "http://h:1/mock/bank/gateway"
    assert mocked.pay_link_secret == mock_credentials(settings).bank_pay_link_secret

    configured = bank_link(
        msgspec.structs.replace(
            settings,
            mocks_enabled=True,
            bank_webhook_secrets=" old , new,",
            bank_pay_url="https://bank.example/pay",
            bank_gateway_url="https://bank.example/gw",
        )
    )
    assert configured.webhook_secrets == ("old", "new")
    assert configured.pay_page_base == "https://bank.example/pay"
    assert configured.gateway_url == "https://bank.example/gw"

    off = bank_link(settings)
    assert off.webhook_secrets == () and off.pay_page_base == "" and off.gateway_url == ""
