"""Mock WeChat API: wx.login stand-in and jscode2session with WeChat's error codes."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from miniapp_mock.app import MockSettings, create_mock_app
from tests.miniapp_mock.helpers import FakeClock

Client = TestClient[Litestar]
APPID = "wx0123456789abcdef"


def login(client: Client, user: str) -> str:
    response = client.post("/wechat/login", json={"user": user})
    assert response.status_code == 200
    return response.json()["code"]


def session(client: Client, code: str | None, **override: str) -> dict[str, Any]:
    params = {"appid": APPID, "secret": "wechat-secret", "grant_type": "authorization_code"}
    if code is not None:
        params["js_code"] = code
    params.update(override)
    response = client.get("/wechat/sns/jscode2session", params=params)
    assert response.status_code == 200  # WeChat reports errors in the body
    return response.json()


def test_code_exchanges_for_a_stable_openid(client: Client) -> None:
    first = session(client, login(client, "alice"))
    assert set(first) == {"openid", "session_key", "unionid"}
    assert first["openid"].startswith("o") and len(first["openid"]) == 28

    again = session(client, login(client, "alice"))
    assert again["openid"] == first["openid"]
    assert again["unionid"] == first["unionid"]
    assert again["session_key"] != first["session_key"]

    bob = session(client, login(client, "bob"))
    assert bob["openid"] != first["openid"]


def test_openid_survives_a_restart(settings: MockSettings, client: Client) -> None:
    before = session(client, login(client, "alice"))["openid"]
    with TestClient(create_mock_app(settings)) as other:
        assert session(other, login(other, "alice"))["openid"] == before


def test_code_is_single_use(client: Client) -> None:
    code = login(client, "alice")
    assert "openid" in session(client, code)
    used = session(client, code)
    assert used["errcode"] == 40163
    assert used["errmsg"].startswith("code been used")


def test_unknown_code_is_invalid(client: Client) -> None:
    answer = session(client, "not-a-code")
    assert answer["errcode"] == 40029
    assert answer["errmsg"].startswith("invalid code")


def test_code_expires_after_five_minutes(client: Client, clock: FakeClock) -> None:
    code = login(client, "alice")
    clock.advance(minutes=5)
    assert session(client, code)["errcode"] == 40029

    fresh = login(client, "alice")
    clock.advance(minutes=4, seconds=59)
    assert "openid" in session(client, fresh)


@pytest.mark.parametrize(
    ("override", "errcode"),
    [
        ({"appid": "wx-other"}, 40013),
        ({"secret": "wrong"}, 40125),
        ({"grant_type": "client_credential"}, 40002),
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
    ],
)
def test_credentials_are_checked(client: Client, override: dict[str, str], errcode: int) -> None:
    code = login(client, "alice")
    assert session(client, code, **override)["errcode"] == errcode
    # A refused call does not consume the code.
    assert "openid" in session(client, code)


def test_missing_code(client: Client) -> None:
    assert session(client, None)["errcode"] == 41008


@pytest.mark.parametrize(
    ("user", "errcode"), [("risky", 40226), ("busy", -1), ("ratelimited", 45011)]
)
def test_special_users_force_errors(client: Client, user: str, errcode: int) -> None:
    assert session(client, login(client, user))["errcode"] == errcode


def test_fault_fails_only_the_next_call(client: Client) -> None:
    code = login(client, "alice")
    assert client.post("/wechat/faults", json={"next_errcode": -1}).status_code == 200
    busy = session(client, code)
    assert busy["errcode"] == -1 and busy["errmsg"].startswith("system error")
    # The code was not consumed by the failed call.
    assert "openid" in session(client, code)


def test_login_needs_a_user(client: Client) -> None:
    assert client.post("/wechat/login", json={"user": " "}).status_code == 400
    assert client.post("/wechat/login", json={"user": "a", "x": 1}).status_code == 400


def _stable_token(client: Client, **extra: object) -> str:
    return client.post(
        "/wechat/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APPID, "secret": "wechat-secret",
              **extra},
    ).json()["access_token"]


def _send(
    client: Client, openid: str, template_id: str = "tmpl-signed",
    data: dict[str, str] | None = None,
) -> int:
    answer = client.post(
        "/wechat/cgi-bin/message/subscribe/send",
        params={"access_token": _stable_token(client)},
        json={"touser": openid, "template_id": template_id,
              "data": {k: {"value": v} for k, v in (data or {"thing1": "明湖花园"}).items()}},
    )
    assert answer.status_code == 200
    return answer.json()["errcode"]


def test_the_stable_token_is_shared_and_a_plain_token_retires_the_others(client: Client) -> None:
    first = _stable_token(client)
    assert _stable_token(client) == first  # another worker gets the same token
    plain = client.get(
        "/wechat/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": APPID, "secret": "wechat-secret"},
    ).json()["access_token"]
    assert plain != first
    refused = client.post("/wechat/cgi-bin/message/subscribe/send", params={"access_token": first},
                          json={"touser": "x", "template_id": "tmpl-signed", "data": {}})
    assert refused.json()["errcode"] == 40001
    assert _stable_token(client, force_refresh=True) != plain
    wrong = client.post("/wechat/cgi-bin/stable_token",
                        json={"grant_type": "client_credential", "appid": APPID, "secret": "x"})
    assert wrong.json()["errcode"] == 40125


def test_template_ids_and_values_follow_the_mini_programs_templates(client: Client) -> None:
    openid = session(client, login(client, "dave"))["openid"]
    assert _send(client, openid, "tmpl_contract_signed") == 40037  # not this mini program's
    for _ in range(6):
        client.post("/wechat/subscriptions",
                    json={"openid": openid, "template_id": "tmpl-signed", "accept": True})
    for bad in ({"thing1": "甲" * 21}, {"amount3": "300000.00"}, {"time4": "11月24日 24:00"},
                {"character_string2": "YS 2026/1"}, {"thing9": "x"}, {"thing1": ""}):
        assert _send(client, openid, data=bad) == 47003, bad
    good = {"thing1": "明湖花园", "character_string2": "YS2026000123",
            "amount3": "¥300000.00", "time4": "11月24日 23:59"}
    assert _send(client, openid, data=good) == 0


def test_subscriptions_are_one_time(client: Client) -> None:
    openid = session(client, login(client, "carol"))["openid"]
    assert _send(client, openid) == 43101  # never asked: WeChat refuses
    tapped = client.post(
        "/wechat/subscribe/request",
        json={
            "user": "carol",
            "results": {"tmpl-signed": "accept", "tmpl-paid": "reject"},
        },
    )
    assert tapped.json() == {
        "errMsg": "requestSubscribeMessage:ok",
        "tmpl-signed": "accept",
        "tmpl-paid": "reject",
    }
    assert _send(client, openid, "tmpl-paid") == 43101
    assert _send(client, openid) == 0  # one "accept", one message
    assert _send(client, openid) == 43101
    delivered = client.get("/wechat/subscribe/messages", params={"openid": openid}).json()
    assert [m["template_id"] for m in delivered] == ["tmpl-signed"]

    client.post(
        "/wechat/subscriptions",
        json={"openid": openid, "template_id": "tmpl-signed", "accept": True},
    )
    client.post(
        "/wechat/subscriptions",
        json={"openid": openid, "template_id": "tmpl-signed", "accept": False},
    )
    assert _send(client, openid) == 43101  # turned off: what was allowed is gone
