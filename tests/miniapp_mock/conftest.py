"""Fixtures for the mock outside services: settings, a hand-moved clock, a test client."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from miniapp_mock.app import MockSettings, create_mock_app
from tests.miniapp_mock.helpers import ZHANG_ID, FakeClock
from tests.notifications.sms_rig import mock_settings


@pytest.fixture
def settings() -> MockSettings:
    return msgspec.structs.replace(
        mock_settings(wechat_templates={
            "tmpl-signed": ["thing1", "character_string2", "amount3", "time4"],
            "tmpl-paid": ["thing1", "amount2"],
        }),
        wechat_appid="wx0123456789abcdef",
        wechat_secret="wechat-secret",
        public_base_url="http://127.0.0.1:8000/mock",
        api_public_base="http://127.0.0.1:8000",
        people={ZHANG_ID: "张三", "110101198001010010": "李四"},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock_app(settings: MockSettings, clock: FakeClock) -> Litestar:
    return create_mock_app(settings, clock=clock)


@pytest.fixture
def client(mock_app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(mock_app) as c:
        yield c
