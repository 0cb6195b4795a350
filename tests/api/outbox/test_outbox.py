"""The transactional outbox against the mock SMS gateway and WeChat API (over HTTP-shaped
in-process calls): nothing lost, nothing sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.outbox import service
from api.outbox.models import DeliveryAttempt, MessageStatus, OutboxMessage
from api.outbox.worker import OutboxWorker
from api.outside import build_outside, mock_wechat_templates
from miniapp_mock.app import create_mock_app
from notifications.delivery import Dispatcher, RetryPolicy
from notifications.templates import TemplateError
from notifications.wechat import WeChatSubscribeChannel, WeChatTokenSource
from tests.notifications.sms_rig import LosesAnswers, aliyun, mock_settings

SIGNED = {
    "estate": "明湖花园",
    "building": "1栋",
    "room": "301",
    "buyer_name": "张三",
    "contract_number": "YS2026000123",
    "password": "12345678",
}
PHONE = "13900000001"


@dataclass
class Rig:
    mock: Litestar
    worker: OutboxWorker
    dispatcher: Dispatcher
    http: httpx.AsyncClient
    transport: LosesAnswers

    def inbox(self, phone: str = PHONE) -> list[Any]:
        return list(self.mock.state.mock_services.sms.inbox.get(phone, []))

    async def fail_sms(self, count: int, code: str = "isp.SYSTEM_ERROR", status: int = 200) -> None:
        response = await self.http.post(
            "http://mock/sms/faults", json={"next_code": code, "status": status, "count": count}
        )
        assert response.status_code == 200

    def new_worker(
        self, name: str, database: Database, keys: ServiceKeys, clock: MovableClock
    ) -> OutboxWorker:
        return OutboxWorker(
            database, self.dispatcher, keys, clock, name=name, policy=self.worker.policy
        )


@pytest.fixture
async def rig(database: Database, keys: ServiceKeys, clock: MovableClock) -> AsyncIterator[Rig]:
    wechat_templates = mock_wechat_templates()
    mock = create_mock_app(
        mock_settings(
            wechat_templates={t.template_id: list(t.data) for t in wechat_templates.values()}
        ),
        clock=clock.now,
    )
    transport = LosesAnswers(httpx.ASGITransport(app=mock), lose=0)
    async with httpx.AsyncClient(transport=transport) as http:
        tokens = WeChatTokenSource("http://mock/wechat", "wx-test", "wx-test-secret", http)
        dispatcher = Dispatcher(
            aliyun(http, clock.now), WeChatSubscribeChannel(tokens), wechat_templates
        )
        worker = OutboxWorker(
            database, dispatcher, keys, clock, name="w1", policy=RetryPolicy(max_attempts=4)
        )
        yield Rig(mock, worker, dispatcher, http, transport)


async def _enqueue(
    database: Database, keys: ServiceKeys, clock: MovableClock, **kw: Any
) -> uuid.UUID | None:
    defaults: dict[str, Any] = {
        "template": "contract_signed",
        "params": SIGNED,
        "dedupe_key": "contract-1:signed:13900000001",
        "phone": PHONE,
    }
    async with database.writer() as session, session.begin():
        return await service.enqueue(session, keys, now=clock.now(), **{**defaults, **kw})


async def _message(database: Database, message_id: uuid.UUID) -> OutboxMessage:
    async with database.reader() as session:
        message = await session.get(OutboxMessage, message_id)
        assert message is not None
        return message


async def test_a_committed_message_is_delivered_once_and_its_secrets_purged(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    async with database.reader() as session:
        stored = await session.get(OutboxMessage, message_id)
        assert stored is not None and "12345678" not in (stored.params_encrypted or "")
    assert await rig.worker.run_once() == 1
    assert await rig.worker.run_once() == 0
    inbox = rig.inbox()
    assert len(inbox) == 1
    assert inbox[0].text.startswith(
        "【网签测试】尊敬的张三，您购买的明湖花园，1栋，301室已签订网签合同"
    )
    assert "合同编号为：YS2026000123" in inbox[0].text and "12345678" in inbox[0].text
    message = await _message(database, message_id)
    assert message.status == MessageStatus.sent and message.channel == "sms"
    assert message.params_encrypted is None


async def test_a_rolled_back_change_sends_nothing(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    async with database.writer() as session:
        await session.begin()
        await service.enqueue(
            session,
            keys,
            template="contract_signed",
            params=SIGNED,
            dedupe_key="rolled-back",
            phone=PHONE,
            now=clock.now(),
        )
        await session.rollback()
    assert await rig.worker.run_once() == 0
    assert rig.inbox() == []


async def test_a_replayed_event_is_queued_once(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    assert await _enqueue(database, keys, clock) is not None
    assert await _enqueue(database, keys, clock) is None
    await rig.worker.run_once()
    assert len(rig.inbox()) == 1


async def test_a_failing_gateway_is_retried_with_backoff_until_it_succeeds_then_stops(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    await rig.fail_sms(2)
    waits = []
    for _ in range(2):
        assert await rig.worker.run_once() == 0
        message = await _message(database, message_id)
        assert message.status == MessageStatus.pending
        waits.append(message.next_attempt_at - clock.now())
        assert await rig.worker.run_once() == 0  # not due yet: nothing happens
        clock.set(message.next_attempt_at)
    assert await rig.worker.run_once() == 1
    # Backoff grows: the second wait is at least the first one's floor doubled.
    assert timedelta(seconds=5) <= waits[0] <= timedelta(seconds=10)
    assert timedelta(seconds=10) <= waits[1] <= timedelta(seconds=20)
    clock.advance(timedelta(hours=2))
    assert await rig.worker.run_once() == 0
    assert len(rig.inbox()) == 1
    async with database.reader() as session:
        outcomes = list(
            await session.scalars(
                select(DeliveryAttempt.outcome)
                .where(DeliveryAttempt.message_id == message_id)
                .order_by(DeliveryAttempt.attempt)
            )
        )
    assert outcomes == ["retry", "retry", "sent"]


async def test_out_of_attempts_the_message_is_dead_until_staff_retry_it(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    await rig.fail_sms(4)
    for _ in range(4):
        await rig.worker.run_once()
        clock.advance(timedelta(hours=1))
    message = await _message(database, message_id)
    assert message.status == MessageStatus.dead and message.attempts == 4
    assert "isp.SYSTEM_ERROR" in (message.last_error or "")
    assert await rig.worker.run_once() == 0
    async with database.writer() as session, session.begin():
        await service.retry_dead(session, message_id, by="staff:陈管理", now=clock.now())
    assert await rig.worker.run_once() == 1
    assert (await _message(database, message_id)).status == MessageStatus.sent


async def test_a_permanent_refusal_is_dead_at_once(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    await rig.fail_sms(1, code="isv.MOBILE_NUMBER_ILLEGAL")
    await rig.worker.run_once()
    message = await _message(database, message_id)
    assert message.status == MessageStatus.dead and message.attempts == 1


async def test_a_value_the_providers_refuse_is_queued_and_dies_in_the_log(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    # The event that sends the message (here a contract's signing) is not undone by its
    # wording: the message is queued, and dies with the reason where staff look.
    message_id = await _enqueue(
        database, keys, clock, params={**SIGNED, "contract_number": "YS-2026-1"}
    )
    assert message_id is not None
    await rig.worker.run_once()
    message = await _message(database, message_id)
    assert message.status == MessageStatus.dead and rig.inbox() == []
    assert "contract_number ('YS-2026-1') is not a valid number" in (message.last_error or "")
    assert await _attempts(database, message_id) == [("dead", "TEMPLATE")]
    # A parameter the code forgot is still the change's bug, refused where it is made.
    missing = {k: v for k, v in SIGNED.items() if k != "password"}
    with pytest.raises(TemplateError, match="required"):
        await _enqueue(database, keys, clock, params=missing, dedupe_key="other")


async def test_a_crash_between_commit_and_delivery_loses_nothing(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    # Worker "dead" claims the message and dies before delivering.
    async with database.writer() as session, session.begin():
        claimed = await service.claim(
            session, keys, worker="dead", now=clock.now(), limit=10, lease=timedelta(seconds=60)
        )
    assert [c.id for c in claimed] == [message_id]
    survivor = rig.new_worker("survivor", database, keys, clock)
    assert await survivor.run_once() == 0  # the lease still protects it
    clock.advance(timedelta(seconds=61))
    assert await survivor.run_once() == 1
    assert len(rig.inbox()) == 1
    # The dead worker coming back late cannot overwrite the survivor's record.
    from notifications.delivery import Delivered

    async with database.writer() as session, session.begin():
        assert not await service.record_sent(
            session, message_id, Delivered("sms", "late"), worker="dead", now=clock.now()
        )
    assert (await _message(database, message_id)).provider_id != "late"


class CountingDispatcher(Dispatcher):
    def __init__(self, inner: Dispatcher) -> None:
        super().__init__(inner.sms, inner.wechat)
        self.calls: list[str] = []

    async def deliver(self, message_id: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(message_id)
        await asyncio.sleep(0)  # let the other worker run in between
        return await super().deliver(message_id, *args, **kwargs)


async def test_two_workers_never_send_one_message_twice(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    ids = []
    for n in range(30):
        phone = f"1390000{n:04d}"
        ids.append(await _enqueue(database, keys, clock, dedupe_key=f"m{n}", phone=phone))
    counting = CountingDispatcher(rig.dispatcher)
    workers = [
        OutboxWorker(database, counting, keys, clock, name=f"w{n}", batch=4) for n in range(2)
    ]
    for _ in range(20):
        sent = await asyncio.gather(*(w.run_once() for w in workers))
        if sum(sent) == 0:
            break
    assert sorted(counting.calls) == sorted(str(i) for i in ids)  # each exactly once
    async with database.reader() as session:
        statuses = set(await session.scalars(select(OutboxMessage.status)))
    assert statuses == {MessageStatus.sent}


async def test_one_time_codes_go_ahead_of_the_queue(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    for n in range(3):
        await _enqueue(database, keys, clock, dedupe_key=f"bulk{n}", phone=f"1380000000{n}")
    clock.advance(timedelta(seconds=1))
    otp_id = await _enqueue(
        database,
        keys,
        clock,
        template="one_time_code",
        dedupe_key="otp-1",
        params={"code": "482913", "purpose": "签署合同", "minutes": 5},
    )
    assert otp_id is not None
    assert await rig.worker.deliver_now(otp_id) == 1
    assert "482913" in rig.inbox()[0].text
    async with database.reader() as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == MessageStatus.pending)
        )
    assert waiting == 3
    # And in a normal batch the urgent one is claimed first.
    otp2 = await _enqueue(
        database,
        keys,
        clock,
        template="one_time_code",
        dedupe_key="otp-2",
        params={"code": "111222", "purpose": "登录", "minutes": 5},
    )
    async with database.writer() as session, session.begin():
        first = await service.claim(
            session, keys, worker="x", now=clock.now(), limit=1, lease=timedelta(seconds=60)
        )
    assert [c.id for c in first] == [otp2]


async def test_a_person_is_not_flooded(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    for n in range(7):
        await _enqueue(database, keys, clock, dedupe_key=f"flood{n}")
    assert await rig.worker.run_once() == 5
    assert await rig.worker.run_once() == 0
    clock.advance(timedelta(minutes=10, seconds=1))
    assert await rig.worker.run_once() == 2
    assert len(rig.inbox()) == 7


async def test_wechat_first_and_sms_when_the_user_refused(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    wechat = rig.mock.state.mock_services.wechat
    wechat.known_openids.update({"o-accepts", "o-refuses"})
    for openid, accept in (("o-accepts", True), ("o-refuses", False)):
        await rig.http.post(
            "http://mock/wechat/subscriptions",
            json={"openid": openid, "template_id": "mock-contract-signed", "accept": accept},
        )
    accepted = await _enqueue(database, keys, clock, dedupe_key="a", openid="o-accepts")
    refused = await _enqueue(
        database, keys, clock, dedupe_key="b", openid="o-refuses", phone="13900000002"
    )
    assert await rig.worker.run_once() == 2
    assert accepted is not None and refused is not None
    by_wechat = await _message(database, accepted)
    assert by_wechat.channel == "wechat"
    assert [m["touser"] for m in wechat.subscribe_messages] == ["o-accepts"]
    assert wechat.subscribe_messages[0]["data"]["character_string2"] == {"value": "YS2026000123"}
    fell_back = await _message(database, refused)
    assert fell_back.channel == "sms" and "43101" in (fell_back.note or "")
    assert len(rig.inbox("13900000002")) == 1
    assert rig.inbox() == []  # the WeChat delivery did not also send an SMS


async def test_wechat_busy_without_a_phone_is_retried(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    rig.mock.state.mock_services.wechat.known_openids.add("o-only")
    await rig.http.post(
        "http://mock/wechat/subscriptions",
        json={"openid": "o-only", "template_id": "mock-contract-signed", "accept": True},
    )
    await rig.http.post("http://mock/wechat/subscribe/faults", json={"next_errcode": -1})
    message_id = await _enqueue(database, keys, clock, dedupe_key="w", openid="o-only", phone=None)
    assert message_id is not None
    assert await rig.worker.run_once() == 0
    assert (await _message(database, message_id)).status == MessageStatus.pending
    clock.advance(timedelta(minutes=1))
    assert await rig.worker.run_once() == 1


async def test_staff_see_their_company_log(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    await _enqueue(database, keys, clock, dedupe_key="x1")
    total, rows = await _list(database)
    assert total == 1 and rows[0].template == "contract_signed"


async def _list(database: Database) -> tuple[int, list[OutboxMessage]]:
    async with database.reader() as session:
        return await service.list_messages(session)


def test_enqueue_refuses_messages_without_a_recipient() -> None:
    import asyncio as _asyncio

    async def attempt() -> None:
        await service.enqueue(
            None,
            None,
            template="contract_signed",
            params=SIGNED,  # type: ignore[arg-type]
            dedupe_key="k",
            now=None,  # type: ignore[arg-type]
        )

    with pytest.raises(ValueError, match="phone or an openid"):
        _asyncio.run(attempt())


# ------------------------------------------------------------------ unknown outcomes


async def _attempts(database: Database, message_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with database.reader() as session:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.at, DeliveryAttempt.attempt)
        )
        return [(row.outcome, row.error_code) for row in rows]


async def test_a_timed_out_send_is_looked_up_not_sent_again(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    """The contract password went out but its answer was lost: the worker asks Alibaba's
    QuerySendDetails (by our OutId) and records the message as sent; nothing goes twice."""
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    rig.transport.lose = 1
    assert await rig.worker.run_once() == 0
    message = await _message(database, message_id)
    assert message.status == MessageStatus.pending and message.outcome_unknown_since is not None
    clock.set(message.next_attempt_at)
    assert await rig.worker.run_once() == 1
    assert len(rig.inbox()) == 1
    message = await _message(database, message_id)
    assert message.status == MessageStatus.sent and message.outcome_unknown_since is None
    assert "查询已受理" in (message.note or "")
    assert await _attempts(database, message_id) == [("unknown", "TIMEOUT"), ("sent", None)]


async def test_a_send_that_never_arrived_is_sent_after_the_provider_says_so(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no route", request=request)

    real = rig.transport.inner
    rig.transport.inner = httpx.MockTransport(unreachable)
    assert await rig.worker.run_once() == 0
    rig.transport.inner = real
    message = await _message(database, message_id)
    clock.set(message.next_attempt_at)
    assert await rig.worker.run_once() == 1  # QuerySendDetails: absent, so it is sent
    assert len(rig.inbox()) == 1


async def test_a_worker_that_died_mid_send_leaves_a_lookup_not_a_second_send(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    # The worker claimed it, sent it, and died before recording anything.
    async with database.writer() as session, session.begin():
        [claimed] = await service.claim(
            session,
            keys,
            worker="dead-worker",
            now=clock.now(),
            limit=1,
            lease=timedelta(seconds=60),
        )
    await rig.dispatcher.deliver(
        str(claimed.id), claimed.template, claimed.params, claimed.recipient
    )
    assert len(rig.inbox()) == 1
    clock.advance(timedelta(seconds=61))
    assert await rig.worker.run_once() == 1
    assert len(rig.inbox()) == 1  # looked up and found, not sent again


async def test_an_outcome_nobody_can_tell_waits_then_goes_to_a_person(
    rig: Rig, database: Database, keys: ServiceKeys, clock: MovableClock
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("silence", request=request)

    rig.transport.inner = httpx.MockTransport(silent)
    assert await rig.worker.run_once() == 0
    for _ in range(20):
        message = await _message(database, message_id)
        if message.status is MessageStatus.dead:
            break
        clock.set(message.next_attempt_at)
        await rig.worker.run_once()
    assert message.status is MessageStatus.dead
    assert "SMS_OUTCOME_UNKNOWN" in (message.last_error or "")
    assert rig.inbox() == []


async def test_delivery_receipts_are_recorded_in_the_delivery_log(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    message_id = await _enqueue(database, keys, clock)
    assert message_id is not None
    assert await mock_app.state.outbox.run_once() == 1
    message = await _message(database, message_id)
    token = build_outside(mock_app.state.settings, httpx.AsyncClient()).sms_receipt_token
    report = [
        {
            "phone_number": PHONE,
            "success": True,
            "err_code": "DELIVERED",
            "err_msg": "用户接收成功",
            "biz_id": message.provider_id,
            "out_id": str(message_id),
            "report_time": "2026-11-23 10:00:07",
            "send_time": "2026-11-23 10:00:00",
            "sms_size": "1",
        }
    ]
    for _ in range(2):  # the provider pushes again until answered; recorded once
        answer = await mock_client.post(f"/api/v1/webhooks/sms/{token}", json=report)
        assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "成功"}
    message = await _message(database, message_id)
    assert message.delivery_status == "delivered"
    assert await _attempts(database, message_id) == [("sent", None), ("delivered", "DELIVERED")]
    wrong = await mock_client.post("/api/v1/webhooks/sms/not-the-token", json=report)
    assert wrong.status_code == 404
    garbage = await mock_client.post(f"/api/v1/webhooks/sms/{token}", json={"x": 1})
    assert garbage.status_code == 422 and garbage.json()["code"] == "sms_receipt_invalid"
