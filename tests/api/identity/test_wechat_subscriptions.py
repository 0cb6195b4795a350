"""WeChat subscribe messages (订阅消息): a citizen allows them in the mini program, and the
outbox then sends the news over WeChat as well as by SMS, one message per consent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import DemoPerson
from api.identity.subscriptions import MAX_SUBSCRIPTION_GRANTS
from api.outbox.models import OutboxMessage
from tests.api.contracts.helpers import (
    ZHANG,
    Demo,
    demo,
    prove_identity,
    scan,
    seal,
    sign,
)
from tests.api.contracts.helpers import create_issued as issue_order
from tests.api.identity.helpers import bearer, login_phone, send_code, wechat_code

SIGNED = "mock-contract-signed"
ARRIVED = "mock-down-payment-arrived"


async def _wechat_login(client: httpx.AsyncClient, user: str) -> str:
    answer = await client.post("/api/v1/auth/wechat", json={"code": await wechat_code(client, user)})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


async def _wechat_buyer(client: httpx.AsyncClient, person: DemoPerson) -> str:
    """A buyer who came through the mini program: WeChat login, phone, real name, face."""
    token = await _wechat_login(client, person.phone)
    code = await send_code(client, person.phone)
    bound = await client.post(
        "/api/v1/me/phone", json={"phone": person.phone, "code": code}, headers=bearer(token)
    )
    assert bound.status_code == 200, bound.text
    await prove_identity(client, token, person)
    return token


async def _answer(
    client: httpx.AsyncClient, token: str, results: dict[str, str]
) -> httpx.Response:
    return await client.post(
        "/api/v1/me/wechat-subscriptions", json={"results": results}, headers=bearer(token)
    )


def _remaining(answer: httpx.Response) -> dict[str, int]:
    assert answer.status_code == 200, answer.text
    return {s["template_id"]: s["remaining"] for s in answer.json()["subscriptions"]}


async def test_each_accept_allows_one_message_and_ban_turns_it_off(
    mock_client: httpx.AsyncClient,
) -> None:
    token = await _wechat_login(mock_client, "wx-user-1")
    listed = await mock_client.get("/api/v1/me/wechat-subscriptions", headers=bearer(token))
    offered = {s["template_id"]: s["title"] for s in listed.json()["subscriptions"]}
    assert offered[SIGNED] == "买卖合同签订" and offered[ARRIVED] == "预售款到账"
    assert set(_remaining(listed).values()) == {0}

    assert _remaining(await _answer(mock_client, token, {SIGNED: "accept", ARRIVED: "reject"}))[
        SIGNED
    ] == 1
    twice = _remaining(await _answer(mock_client, token, {SIGNED: "accept", ARRIVED: "filter"}))
    assert (twice[SIGNED], twice[ARRIVED]) == (2, 0)
    kept = _remaining(await _answer(mock_client, token, {SIGNED: "reject"}))
    assert kept[SIGNED] == 2  # a later "no" leaves what was allowed before
    assert _remaining(await _answer(mock_client, token, {SIGNED: "ban"}))[SIGNED] == 0


async def test_consents_are_capped(mock_client: httpx.AsyncClient) -> None:
    token = await _wechat_login(mock_client, "wx-user-2")
    for _ in range(MAX_SUBSCRIPTION_GRANTS + 3):
        answer = await _answer(mock_client, token, {SIGNED: "accept"})
    assert _remaining(answer)[SIGNED] == MAX_SUBSCRIPTION_GRANTS


async def test_refusals_change_nothing(mock_client: httpx.AsyncClient) -> None:
    token = await _wechat_login(mock_client, "wx-user-3")
    await _answer(mock_client, token, {SIGNED: "accept"})

    unknown = await _answer(mock_client, token, {SIGNED: "accept", "tmpl_nonexistent": "accept"})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "subscription_template_unknown"
    assert "tmpl_nonexistent" in unknown.json()["detail"]
    invalid = await _answer(mock_client, token, {SIGNED: "yes please"})
    assert invalid.status_code == 422 and invalid.json()["code"] == "subscription_result_invalid"
    malformed = await mock_client.post(
        "/api/v1/me/wechat-subscriptions", json={"results": [SIGNED]}, headers=bearer(token)
    )
    assert malformed.status_code == 422
    listed = await mock_client.get("/api/v1/me/wechat-subscriptions", headers=bearer(token))
    assert _remaining(listed)[SIGNED] == 1  # neither refused request counted anything

    # An account without a WeChat login has nothing to subscribe with.
    by_phone = await login_phone(mock_client, "13900000099")
    no_wechat = await _answer(mock_client, by_phone, {SIGNED: "accept"})
    assert no_wechat.status_code == 409 and no_wechat.json()["code"] == "wechat_not_bound"
    anonymous = await mock_client.post(
        "/api/v1/me/wechat-subscriptions", json={"results": {SIGNED: "accept"}}
    )
    assert anonymous.status_code == 401


async def test_a_signed_contract_reaches_the_buyer_on_wechat_and_by_sms(
    mock_client: httpx.AsyncClient,
    mock_app: Litestar,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    staff = await client.post(
        "/api/v1/me/wechat-subscriptions", json={"results": {}}, headers=bearer(d.agent)
    )
    assert staff.status_code == 403

    zhang = await _wechat_buyer(client, ZHANG)
    # In the mini program: wx.requestSubscribeMessage, the buyer taps "allow" for the
    # signing news (WeChat records it), and the page tells our server.
    tapped = await client.post(
        "/mock/wechat/subscribe/request",
        json={"user": ZHANG.phone, "results": {SIGNED: "accept", ARRIVED: "reject"}},
    )
    assert tapped.json() == {
        "errMsg": "requestSubscribeMessage:ok",
        SIGNED: "accept",
        ARRIVED: "reject",
    }
    results = {k: v for k, v in tapped.json().items() if k != "errMsg"}
    assert _remaining(await _answer(client, zhang, results))[SIGNED] == 1

    order_id, sealed = await _signed_contract(client, d, zhang, "403", clock)
    messages = await _signed_messages(database, order_id)
    channels = sorted(
        (m.recipient_phone_encrypted is None, m.recipient_openid is None) for m in messages
    )
    assert channels == [
        (False, True),  # the SMS the seeds prescribe, with the password
        (True, False),  # and the WeChat message the buyer allowed
    ]
    worker = mock_app.state.outbox
    while await worker.run_once():
        pass
    delivered = await client.get("/mock/wechat/subscribe/messages")
    sent = delivered.json()
    assert [m["template_id"] for m in sent] == [SIGNED]
    assert sent[0]["touser"] == next(m.recipient_openid for m in messages if m.recipient_openid)
    assert sent[0]["data"]["character_string2"] == {"value": sealed["contract_number"]}
    assert sealed["password"] not in str(sent)  # the password goes by SMS only
    sms = await client.get("/mock/sms/inbox", params={"phone": ZHANG.phone})
    assert any(
        sealed["contract_number"] in m["text"] and sealed["password"] in m["text"]
        for m in sms.json()
    )
    listed = await client.get("/api/v1/me/wechat-subscriptions", headers=bearer(zhang))
    assert _remaining(listed)[SIGNED] == 0  # the consent was used

    # The next contract: no consent left, so only the SMS.
    second, _ = await _signed_contract(client, d, zhang, "404", clock)
    assert [m.recipient_openid for m in await _signed_messages(database, second)] == [None]


async def _signed_messages(database: Database, order_id: str) -> list[OutboxMessage]:
    async with database.reader() as reader:
        return list(
            await reader.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.contract_id == uuid.UUID(order_id),
                    OutboxMessage.template == "contract_signed",
                )
            )
        )


async def _signed_contract(
    client: httpx.AsyncClient, d: Demo, token: str, room: str, clock: MovableClock
) -> tuple[str, dict[str, Any]]:
    issued = await issue_order(client, d, room, ZHANG)
    order_id = issued["order"]["id"]
    scanned = await scan(client, token, issued["scene"])
    assert scanned.status_code == 200, scanned.text
    signed, _ = await sign(client, token, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    sealed = await seal(client, d, order_id, clock)
    assert sealed.status_code == 200, sealed.text
    return order_id, sealed.json()
