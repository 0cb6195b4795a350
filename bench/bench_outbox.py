"""Notification outbox throughput, in process, on SQLite (or WANGQIAN_DATABASE_URL).

Measures in one run, against the mock SMS gateway reached over HTTP-shaped in-process
calls (httpx ASGITransport, so no sockets and no network noise):

- baseline: direct ``AliyunSmsChannel.send`` calls to the mock, no database;
- enqueue: one message per committed transaction, as a request handler does;
- deliver: the worker claiming, sending and recording what was enqueued.

Prints medians over rounds and each rate as a ratio of the baseline.
Usage: ``python bench/bench_outbox.py [--messages 300] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.core.clock import SystemClock
from api.core.keys import ServiceKeys
from api.db.engine import create_database
from api.db.migrate import upgrade
from api.outbox import service
from api.outbox.worker import OutboxWorker
from api.outside import mock_sms_specs, mock_sms_templates
from api.settings import Settings
from miniapp_mock.app import MockSettings, create_mock_app
from notifications.aliyun_sms import AliyunSmsChannel
from notifications.delivery import Dispatcher

PARAMS = {
    "estate": "明湖花园",
    "building": "1栋",
    "room": "301",
    "buyer_name": "张三",
    "contract_number": "YS2026000123",
    "password": "12345678",
}


async def one_round(messages: int, data_dir: Path, round_no: int) -> tuple[float, float, float]:
    settings = Settings.from_env(data_dir=data_dir)
    database = create_database(settings)
    keys = ServiceKeys.from_master(b"bench-master-secret-" + b"x" * 32)
    clock = SystemClock()
    mock = create_mock_app(
        MockSettings(
            sms_access_key="ak",
            sms_secret="s",
            sms_sign_name="基准",
            sms_templates=mock_sms_specs(),
            wechat_appid="wx",
            wechat_secret="w",
            faceid_secret_id="i",
            faceid_secret_key="f",
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mock)) as http:
        channel = AliyunSmsChannel(
            "http://mock/sms/aliyun", "ak", "s", "基准", mock_sms_templates(), http
        )
        started = time.perf_counter()
        for n in range(messages):
            await channel.send(
                f"1390{round_no:03d}{n % 10000:04d}", "", template="one_time_code",
                params={"code": "123456"},
            )
        baseline = messages / (time.perf_counter() - started)

        started = time.perf_counter()
        for n in range(messages):
            async with database.writer() as session, session.begin():
                await service.enqueue(
                    session,
                    keys,
                    template="contract_signed",
                    params=PARAMS,
                    dedupe_key=f"r{round_no}:m{n}",
                    phone=f"1380{round_no:03d}{n:04d}",
                    now=clock.now(),
                )
        enqueue = messages / (time.perf_counter() - started)

        worker = OutboxWorker(database, Dispatcher(channel), keys, clock, batch=50)
        started = time.perf_counter()
        delivered = 0
        while delivered < messages:
            sent = await worker.run_once()
            if sent == 0:
                raise SystemExit("worker stalled")
            delivered += sent
        deliver = messages / (time.perf_counter() - started)
    await database.dispose()
    return baseline, enqueue, deliver


def main() -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(data_dir=Path(tmp))
        upgrade(settings)
        results = [asyncio.run(one_round(args.messages, Path(tmp), r)) for r in range(args.rounds)]
    baseline, enqueue, deliver = (
        statistics.median(column) for column in zip(*results, strict=True)
    )
    database = "PostgreSQL" if settings.database_url.startswith("postgresql") else "SQLite"
    print(f"outbox, {database}, {args.messages} messages x {args.rounds} rounds (medians)")
    print(f"  baseline: direct gateway sends     {baseline:8.0f} /s   1.00x")
    print(f"  enqueue (1 transaction each)       {enqueue:8.0f} /s   {enqueue / baseline:4.2f}x")
    print(f"  deliver (claim, send, record)      {deliver:8.0f} /s   {deliver / baseline:4.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
