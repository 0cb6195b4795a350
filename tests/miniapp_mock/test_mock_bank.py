"""The mock supervising bank: its payment page, and the signed webhooks it sends for
payments, executed instructions and redeliveries (captured here, not sent anywhere)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import msgspec
from litestar import Litestar
from litestar.testing import TestClient

from miniapp_mock.app import MockSettings, create_mock_app
from tests.miniapp_mock.helpers import FakeClock

SECRET = "bank-secret"


def _app(settings: MockSettings, clock: FakeClock) -> tuple[Litestar, list[httpx.Request]]:
    app = create_mock_app(
        msgspec.structs.replace(settings, bank_webhook_secret=SECRET), clock=clock
    )
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"received": True, "duplicate": len(sent) > 1})

    app.state.mock_bank.http = httpx.AsyncClient(transport=httpx.MockTransport(receive))
    return app, sent


def _verified(request: httpx.Request, at: int) -> dict[str, Any]:
    header = request.headers["X-Bank-Signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    assert int(parts["t"]) == at
    mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + request.content, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], mac.hexdigest())
    return json.loads(request.content)


def test_pay_page_and_payment_webhook(settings: MockSettings, clock: FakeClock) -> None:
    app, sent = _app(settings, clock)
    with TestClient(app) as client:
        page = client.get(
            "/bank/pay",
            params={"reference": "WQABC", "amount_fen": 150, "account": "6222020200112233445"},
        )
        assert page.status_code == 200
        assert "确认支付" in page.text and "6222 **** **** 3445" in page.text
        assert 'value="150"' in page.text
        done = client.post(
            "/bank/pay",
            data={"reference": "WQABC", "amount_fen": "150", "account": "6222020200112233445"},
        )
        assert done.status_code == 200 and "支付成功" in done.text
        bad = client.post(
            "/bank/pay", data={"reference": "WQABC", "amount_fen": "x", "account": "1"}
        )
        assert bad.status_code == 422
    assert len(sent) == 1
    assert str(sent[0].url) == "http://127.0.0.1:8000/api/v1/webhooks/bank"
    event = _verified(sent[0], int(clock.now.timestamp()))
    assert event["type"] == "payment.received"
    assert event["data"]["reference"] == "WQABC"
    assert event["data"]["amount_fen"] == 150
    assert event["data"]["transaction_id"].startswith("BK")


def test_instruction_execution_and_redelivery(settings: MockSettings, clock: FakeClock) -> None:
    app, sent = _app(settings, clock)
    with TestClient(app) as client:
        record = client.post(
            "/bank/instructions/abc-123/execute",
            json={"kind": "release", "account_number": "6222020200112233445", "amount_fen": 99},
        ).json()
        assert record["status"] == 200 and record["type"] == "release.completed"
        clock.advance(seconds=90)
        again = client.post(f"/bank/events/{record['transaction_id']}/redeliver").json()
        assert again["answer"]["duplicate"] is True
        assert client.post("/bank/events/nope/redeliver").status_code == 404
        log = client.get("/bank/events").json()
        assert [e["type"] for e in log] == ["release.completed", "release.completed"]
    t1 = int(clock.now.timestamp())
    first, second = _verified(sent[0], t1 - 90), _verified(sent[1], t1)  # re-signed
    assert first == second
    assert first["data"]["instruction_id"] == "abc-123"
    assert sent[0].headers["X-Bank-Signature"] != sent[1].headers["X-Bank-Signature"]
