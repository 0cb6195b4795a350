"""The mock SMS providers' review of templates, their inbox and their test faults (the wire
protocols themselves are driven by our channels in tests/notifications/test_sms.py)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

Client = TestClient[Litestar]


@pytest.mark.parametrize(
    ("text", "verification", "problem"),
    [
        ("【网签】您的验证码为${code}，5分钟内有效。", True, "【】"),
        ("首付款[${amount}]元已到账。", False, "【】"),
        ("请打开 https://wq.example/s/${scene} 签署。", False, "变量链接"),
        ("请打开 ${site}.cn 签署合同。", False, "变量链接"),
        ("您购买的${estate}${room}室已签约。", False, "相邻"),
        ("${code}", False, "全变量"),
        ("验证码${code}，用于${purpose}。", True, "一个变量"),
        ("合同${no}已签，编号${no}。", False, "仅可出现一次"),
    ],
)
def test_templates_that_break_the_review_rules_are_refused(
    client: Client, text: str, verification: bool, problem: str
) -> None:
    answer = client.post(
        "/sms/templates",
        json={"code": "SMS_9", "name": "t", "text": text, "verification": verification},
    )
    assert answer.status_code == 400
    assert any(problem in p for p in answer.json()["problems"]), answer.json()
    assert "SMS_9" not in [t["code"] for t in client.get("/sms/templates").json()]


def test_a_template_within_the_rules_is_approved(client: Client) -> None:
    answer = client.post(
        "/sms/templates",
        json={"code": "SMS_9", "name": "t", "text": "您的合同${no}已签订，请在小程序中查看。"},
    )
    assert answer.json() == {"approved": True, "problems": []}


def test_our_own_templates_are_all_approved(client: Client) -> None:
    names = {t["name"] for t in client.get("/sms/templates").json()}
    assert {"one_time_code", "contract_signed", "sign_invitation"} <= names


def test_the_inbox_starts_empty_and_faults_queue(client: Client) -> None:
    assert client.get("/sms/inbox", params={"phone": "13800000000"}).json() == []
    queued = client.post("/sms/faults", json={"next_code": "isp.SYSTEM_ERROR", "count": 3})
    assert queued.json() == {"queued": 3}
