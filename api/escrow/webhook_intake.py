"""The bank's webhook from signature to answer, behind one dependency: a handler with
several dependencies has Litestar resolve them in a task group of its own per request,
which the bank's payment rush would pay for on every delivery."""

from __future__ import annotations

from dataclasses import dataclass

from api.core.clock import Clock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow import bank_events, schemas, signature
from api.escrow.payment_batches import Delivery, PaymentGroups
from api.outside import BankLink


@dataclass(frozen=True)
class WebhookIntake:
    database: Database
    keys: ServiceKeys
    clock: Clock
    bank: BankLink
    tolerance_seconds: int
    payments: PaymentGroups

    async def receive(
        self, body: bytes, *, hmac_header: str | None, certificate_header: str | None
    ) -> schemas.WebhookAnswer:
        """Verify the signature, then store and apply the event: payments in groups (one
        commit for all that arrived together), instruction confirmations one by one."""
        now = self.clock.now()
        if certificate_header and self.bank.webhook_certificate:
            signature.verify_certificate(
                certificate_header,
                body,
                self.bank.webhook_certificate,
                now_unix=now.timestamp(),
                tolerance=self.tolerance_seconds,
            )
        else:
            signature.verify(
                hmac_header,
                body,
                list(self.bank.webhook_secrets),
                now_unix=now.timestamp(),
                tolerance=self.tolerance_seconds,
            )
        event = bank_events.decode_event(body)
        if event.type == "payment.received":
            return await self.payments.deliver(Delivery(event, body, now))
        async with self.database.writer() as session, session.begin():
            return await bank_events.ingest_bank_event(session, self.keys, body=body, now=now)
