"""The delivery worker: claims due messages, delivers them, records each outcome.

It runs inside the API process for the embedded default (``create_app`` starts it) and as
``wangqian worker`` beside several API nodes. Every step is its own short transaction, so a
crash at any point loses nothing: a claimed message whose worker died is claimed again
when its lease runs out. SMS providers do not de-duplicate, so a message claimed again
after its worker died is looked up with the provider (by the message id it carries)
before it is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from api.core.clock import Clock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.outbox import service
from api.outside import OutsideServices
from notifications.delivery import Delivered, DeliveryFailedError, Dispatcher, RetryPolicy

log = logging.getLogger("wangqian.outbox")


class OutboxWorker:
    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        keys: ServiceKeys,
        clock: Clock,
        *,
        name: str | None = None,
        batch: int = 20,
        concurrency: int = 8,
        lease: timedelta = timedelta(seconds=60),
        policy: RetryPolicy | None = None,
        periodic: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> None:
        self.database = database
        # Small housekeeping jobs run once per loop (e.g. expiring overdue contract orders).
        self.periodic = list(periodic)
        self.dispatcher = dispatcher
        self.keys = keys
        self.clock = clock
        self.name = name or f"worker-{secrets.token_hex(4)}"
        self.batch = batch
        self.concurrency = concurrency
        self.lease = lease
        self.policy = policy or RetryPolicy()
        self._wakeup = asyncio.Event()

    def kick(self) -> None:
        """Wake the loop now (after a one-time code was queued)."""
        self._wakeup.set()

    async def run_once(self, only: list[uuid.UUID] | None = None) -> int:
        """Deliver what is due; returns how many messages were sent.

        One transaction claims a batch, the sends run concurrently (a slow gateway call
        does not hold up the others), and one transaction records every outcome. If that
        last one is lost, the lease runs out and the batch is claimed again, and each of
        its messages is looked up with the provider before it is sent again.
        """
        async with self.database.writer() as session, session.begin():
            claimed = await service.claim(
                session,
                self.keys,
                worker=self.name,
                now=self.clock.now(),
                limit=self.batch,
                lease=self.lease,
                only=only,
            )
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def attempt(message: service.ClaimedMessage) -> Delivered | DeliveryFailedError:
            async with gate:
                try:
                    return await self.dispatcher.deliver(
                        str(message.id),
                        message.template,
                        message.params,
                        message.recipient,
                        unknown_since=message.unknown_since,
                        now=self.clock.now(),
                    )
                except DeliveryFailedError as failure:
                    return failure

        outcomes = await asyncio.gather(*(attempt(message) for message in claimed))
        sent = 0
        async with self.database.writer() as session, session.begin():
            now = self.clock.now()
            for message, outcome in zip(claimed, outcomes, strict=True):
                if isinstance(outcome, DeliveryFailedError):
                    status = await service.record_failed(
                        session,
                        message.id,
                        outcome,
                        worker=self.name,
                        now=now,
                        policy=self.policy,
                    )
                    log.warning(
                        "delivery failed",
                        extra={
                            "fields": {
                                "message_id": str(message.id),
                                "code": outcome.code,
                                "attempt": message.attempt,
                                "status": str(status),
                            }
                        },
                    )
                elif await service.record_sent(
                    session, message.id, outcome, worker=self.name, now=now
                ):
                    sent += 1
        return sent

    async def run_periodic(self) -> None:
        for job in self.periodic:
            try:
                await job()
            except Exception:
                log.exception("periodic job %s failed", getattr(job, "__name__", job))

    async def deliver_now(self, message_id: uuid.UUID) -> int:
        """Send one message at once, ahead of the queue (one-time codes)."""
        return await self.run_once(only=[message_id])

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Loop until ``stop`` is set. Errors are logged and the loop goes on."""
        while not stop.is_set():
            try:
                while await self.run_once():
                    pass
            except Exception:
                log.exception("outbox worker iteration failed")
            await self.run_periodic()
            self._wakeup.clear()
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._wakeup.wait()),
            ]
            await asyncio.wait(waiters, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()


class EmbeddedWorker:
    """Runs an ``OutboxWorker`` as a background task of the API process."""

    def __init__(self, worker: OutboxWorker, *, poll_seconds: float) -> None:
        self.worker = worker
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(
            self.worker.run(self._stop, poll_seconds=self.poll_seconds)
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


def build_worker(
    database: Database,
    keys: ServiceKeys,
    clock: Clock,
    *,
    outside: OutsideServices,
    name: str | None = None,
    periodic: Sequence[Callable[[], Awaitable[object]]] = (),
) -> OutboxWorker:
    dispatcher = Dispatcher(outside.sms, outside.wechat_messages, outside.wechat_templates)
    return OutboxWorker(database, dispatcher, keys, clock, name=name, periodic=periodic)
