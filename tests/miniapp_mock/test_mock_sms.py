"""Mock SMS gateway: request signing, replay protection, inbox, faults."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from tests.miniapp_mock.helpers import T0, FakeClock

PHONE = "13812345678"
SECRET = "sms-secret"
Client = TestClient[Litestar]


def signed(
    body: dict[str, Any],
    *,
    timestamp: int,
    nonce: str,
    secret: str = SECRET,
    access_key: str = "sms-ak",
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    message = f"{timestamp}\n{nonce}\n".encode() + raw
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return raw, {
        "Content-Type": "application/json",
        "X-Sms-Access-Key": access_key,
        "X-Sms-Timestamp": str(timestamp),
        "X-Sms-Nonce": nonce,
        "X-Sms-Signature": signature,
    }


def message(
    text: str = "验证码 123456，5分钟内有效。", request_id: str = "r1", phone: str = PHONE
) -> dict[str, Any]:
    return {
        "phone": phone,
        "template": "login_code",
        "params": {"code": "123456"},
        "text": text,
        "request_id": request_id,
    }


def send(client: Client, clock: FakeClock, body: dict[str, Any], nonce: str, **kw: Any) -> Any:
    raw, headers = signed(body, timestamp=int(clock().timestamp()), nonce=nonce, **kw)
    return client.post("/sms/send", content=raw, headers=headers)


def test_signed_message_is_delivered_to_the_inbox(client: Client, clock: FakeClock) -> None:
    response = send(client, clock, message(), "n1")
    assert response.status_code == 200
    answer = response.json()
    assert answer["code"] == "OK" and answer["message_id"]

    clock.advance(seconds=70)
    send(client, clock, message("第二条", request_id="r2"), "n2")

    inbox = client.get("/sms/inbox", params={"phone": PHONE}).json()
    assert [m["text"] for m in inbox] == ["第二条", "验证码 123456，5分钟内有效。"]
    assert inbox[1]["template"] == "login_code"
    assert inbox[1]["params"] == {"code": "123456"}
    assert inbox[1]["sent_at"] == T0.isoformat()
    assert inbox[1]["message_id"] == answer["message_id"]
    assert client.get("/sms/inbox", params={"phone": "13900000000"}).json() == []


def test_bad_signature_is_refused(client: Client, clock: FakeClock) -> None:
    response = send(client, clock, message(), "n1", secret="wrong")
    assert response.status_code == 401
    assert response.json()["code"] == "SIGNATURE_INVALID"
    assert client.get("/sms/inbox", params={"phone": PHONE}).json() == []


def test_tampered_body_is_refused(client: Client, clock: FakeClock) -> None:
    raw, headers = signed(message(), timestamp=int(clock().timestamp()), nonce="n1")
    tampered = raw.replace(PHONE.encode(), b"13900000000")
    response = client.post("/sms/send", content=tampered, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "SIGNATURE_INVALID"


def test_unknown_access_key_is_refused(client: Client, clock: FakeClock) -> None:
    response = send(client, clock, message(), "n1", access_key="someone")
    assert response.status_code == 401
    assert response.json()["code"] == "ACCESS_KEY_INVALID"


def test_missing_headers_are_refused(client: Client) -> None:
    response = client.post("/sms/send", json=message())
    assert response.status_code == 401


def test_timestamp_must_be_within_300_seconds(client: Client, clock: FakeClock) -> None:
    now = int(clock().timestamp())
    for offset, ok in ((-301, False), (301, False), (-300, True), (299, True)):
        raw, headers = signed(
            message(request_id=f"r{offset}"), timestamp=now + offset, nonce=f"n{offset}"
        )
        response = client.post("/sms/send", content=raw, headers=headers)
        if ok:
            assert response.status_code == 200, offset
        else:
            assert response.status_code == 401, offset
            assert response.json()["code"] == "TIMESTAMP_EXPIRED"


def test_nonce_cannot_be_reused(client: Client, clock: FakeClock) -> None:
    assert send(client, clock, message(request_id="a"), "same").status_code == 200
    response = send(client, clock, message(request_id="b"), "same")
    assert response.status_code == 401
    assert response.json()["code"] == "NONCE_REUSED"


def test_same_request_id_is_delivered_once(client: Client, clock: FakeClock) -> None:
    first = send(client, clock, message(request_id="retry-me"), "n1").json()
    second = send(client, clock, message(request_id="retry-me"), "n2").json()
    assert first == second
    assert len(client.get("/sms/inbox", params={"phone": PHONE}).json()) == 1


def test_invalid_payloads(client: Client, clock: FakeClock) -> None:
    response = send(client, clock, message(phone="12345"), "n1")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_PHONE")
    response = send(client, clock, {**message(), "extra": 1}, "n2")
    assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")
    response = send(client, clock, message(text=""), "n3")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_TEXT")


def test_faults_fail_the_next_send_only(client: Client, clock: FakeClock) -> None:
    client.post("/sms/faults", json={"next_code": "SYSTEM_BUSY", "status": 503})
    response = send(client, clock, message(), "n1")
    assert (response.status_code, response.json()["code"]) == (503, "SYSTEM_BUSY")
    assert send(client, clock, message(), "n2").status_code == 200


def test_state_is_per_app_instance(settings: Any, clock: FakeClock) -> None:
    from miniapp_mock.app import create_mock_app

    with TestClient(create_mock_app(settings, clock=clock)) as a:
        send(a, clock, message(), "n1")
    with TestClient(create_mock_app(settings, clock=clock)) as b:
        assert b.get("/sms/inbox", params={"phone": PHONE}).json() == []
