"""Where the outside services are: configured ones, or the mocks when mocks are on."""

from __future__ import annotations

import msgspec

from api.outside import bank_link, mock_bank_webhook_secret, mock_credentials, outbound_config
from api.settings import Settings


def test_mocks_fill_in_what_is_not_configured(settings: Settings) -> None:
    mocked = outbound_config(
        msgspec.structs.replace(settings, mocks_enabled=True, public_base_url="http://h:1/")
    )
    assert mocked.wechat_api_base == "http://h:1/mock/wechat"
    assert mocked.sms_gateway_base == mocked.idcheck_base == mocked.face_base == "http://h:1/mock"
    assert mocked.credentials == mock_credentials(settings)  # what the mounted mock expects

    real = outbound_config(
        msgspec.structs.replace(
            settings,
            mocks_enabled=True,
            wechat_api_base="https://api.weixin.qq.com/",
            wechat_appid="wxreal",
            wechat_secret="real-secret",
        )
    )
    assert real.wechat_api_base == "https://api.weixin.qq.com"
    assert real.credentials.wechat_appid == "wxreal"
    assert real.sms_gateway_base.endswith("/mock")

    off = outbound_config(settings)
    assert off.wechat_api_base == off.sms_gateway_base == ""
    assert off.credentials.sms_secret == off.credentials.face_key == ""


def test_identity_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WANGQIAN_SESSION_IDLE_MINUTES": "15",
            "WANGQIAN_SESSION_ABSOLUTE_HOURS": "8",
            "WANGQIAN_FACE_BASE": "https://faceid.example",
            "WANGQIAN_AUTH_IP_LIMIT_PER_MINUTE": "100",
        }
    )
    assert settings.session_idle_minutes == 15 and settings.session_absolute_hours == 8
    assert settings.face_base == "https://faceid.example"
    assert settings.auth_ip_limit_per_minute == 100
    defaults = Settings.from_env({})
    assert (defaults.session_idle_minutes, defaults.session_absolute_hours) == (30, 12)


def test_the_bank_is_the_mock_only_when_mocks_are_on_and_nothing_is_configured(
    settings: Settings,
) -> None:
    mocked = bank_link(
        msgspec.structs.replace(settings, mocks_enabled=True, public_base_url="http://h:1/")
    )
    assert mocked.webhook_secrets == (mock_bank_webhook_secret(settings),)
    assert mocked.pay_page_base == "http://h:1/mock/bank/pay"

    configured = bank_link(
        msgspec.structs.replace(
            settings,
            mocks_enabled=True,
            bank_webhook_secrets=" old , new,",
            bank_pay_url="https://bank.example/pay",
        )
    )
    assert configured.webhook_secrets == ("old", "new")
    assert configured.pay_page_base == "https://bank.example/pay"

    off = bank_link(settings)
    assert off.webhook_secrets == () and off.pay_page_base == ""
