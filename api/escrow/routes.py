"""Escrow routes: supervised accounts, statements, releases, suspense, payment notices and
the bank's signed webhook."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.escrow import (
    accounts,
    bank_events,
    bank_gateway,
    instructions,
    notices,
    receipts,
    schemas,
    signature,
    statements,
)
from api.escrow.webhook_intake import WebhookIntake
from api.identity.guards import company_admins_only, logged_in, regulators_only, staff_only
from api.identity.principal import Principal
from api.outside import BankLink
from api.settings import Settings
from signing.pdf_fonts import load_font
from signing.qr import qr_png


def _id(raw: str, what: str) -> uuid.UUID:
    return parse_id(raw, what=what)


class EscrowController(Controller):
    path = "/api/v1/escrow"
    tags = ("escrow",)
    guards = [staff_only]  # noqa: RUF012

    @post(
        "/accounts",
        guards=[company_admins_only],
        summary="登记预售资金监管账户 (company admin; a regulator approves)",
    )
    async def create_account(
        self,
        data: JSONBody[schemas.NewSupervisedAccount],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        account = await accounts.create_supervised_account(db, principal, data, now=clock.now())
        return accounts.account_answer(account)

    @get("/accounts", summary="监管账户 (own company; regulators: all)")
    async def list_accounts(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.SupervisedAccountList:
        found = await accounts.list_accounts(db, principal)
        return schemas.SupervisedAccountList(items=[accounts.account_answer(a) for a in found])

    async def _review_account(
        self,
        db: AsyncSession,
        clock: Clock,
        principal: Principal,
        raw: str,
        data: Any,
        ok: bool,
        key_rate: int | None = None,
    ) -> schemas.SupervisedAccountAnswer:
        account = await accounts.review_account(
            db,
            principal,
            _id(raw, "监管账户"),
            approve=ok,
            reason=data.reason,
            key_rate_fen_per_m2=key_rate,
            now=clock.now(),
        )
        return accounts.account_answer(account)

    @post(
        "/accounts/{account_id:str}/approve",
        status_code=200,
        guards=[regulators_only],
        summary="审核通过监管账户 (regulator)",
    )
    async def approve_account(
        self,
        account_id: FromPath[str],
        data: JSONBody[schemas.AccountApproval],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        return await self._review_account(
            db, clock, principal, account_id, data, True, data.key_rate_fen_per_m2
        )

    @post(
        "/accounts/{account_id:str}/reject",
        status_code=200,
        guards=[regulators_only],
        summary="驳回监管账户 (regulator, with a reason)",
    )
    async def reject_account(
        self,
        account_id: FromPath[str],
        data: JSONBody[schemas.Review],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        return await self._review_account(db, clock, principal, account_id, data, False)

    @post(
        "/accounts/{account_id:str}/key-rate",
        status_code=200,
        guards=[regulators_only],
        summary="核定重点监管资金标准 (regulator: fen per m²; amounts computed from the units)",
    )
    async def set_key_rate(
        self,
        account_id: FromPath[str],
        data: JSONBody[schemas.KeyRateBody],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        account = await accounts.set_key_rate(
            db,
            principal,
            _id(account_id, "监管账户"),
            rate_fen_per_m2=data.key_rate_fen_per_m2,
            now=clock.now(),
        )
        return accounts.account_answer(account)

    @get("/accounts/{account_id:str}/statement", summary="监管账户对账单 (staff, regulators)")
    async def statement(
        self,
        account_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.Statement:
        account = await accounts.readable_account(db, principal, _id(account_id, "监管账户"))
        return await statements.statement(db, account, now=clock.now())

    @post(
        "/accounts/{account_id:str}/releases",
        guards=[company_admins_only],
        summary="申请一般资金支取 (company admin)",
    )
    async def request_release(
        self,
        account_id: FromPath[str],
        data: JSONBody[schemas.NewRelease],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.InstructionAnswer:
        instruction = await instructions.request_release(
            db,
            principal,
            _id(account_id, "监管账户"),
            amount_fen=data.amount_fen,
            milestone=data.milestone,
            note=data.note,
            now=clock.now(),
        )
        return instructions.instruction_answer(instruction)

    async def _review_release(
        self, db: AsyncSession, clock: Clock, principal: Principal, raw: str, data: Any, ok: bool
    ) -> schemas.InstructionAnswer:
        instruction = await instructions.review_release(
            db, principal, _id(raw, "支取申请"), approve=ok, reason=data.reason, now=clock.now()
        )
        return instructions.instruction_answer(instruction)

    @post(
        "/releases/{release_id:str}/approve",
        status_code=200,
        guards=[regulators_only],
        summary="批准支取 (regulator; never below the key supervised amount)",
    )
    async def approve_release(
        self,
        release_id: FromPath[str],
        data: JSONBody[schemas.Review],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.InstructionAnswer:
        return await self._review_release(db, clock, principal, release_id, data, True)

    @post(
        "/releases/{release_id:str}/reject",
        status_code=200,
        guards=[regulators_only],
        summary="驳回支取 (regulator, with a reason)",
    )
    async def reject_release(
        self,
        release_id: FromPath[str],
        data: JSONBody[schemas.Review],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.InstructionAnswer:
        return await self._review_release(db, clock, principal, release_id, data, False)

    @get(
        "/suspense",
        guards=[regulators_only],
        summary="挂账资金 (payments nobody could match; regulators)",
    )
    async def suspense(self, db: NamedDependency[AsyncSession]) -> schemas.SuspenseList:
        return await statements.suspense_items(db)

    @post(
        "/suspense/{transfer_id:str}/assign",
        status_code=200,
        guards=[regulators_only],
        summary="挂账资金匹配到缴款通知 (regulator; a correcting transfer)",
    )
    async def assign_suspense(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[schemas.AssignSuspense],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        bank: NamedDependency[BankLink],
    ) -> schemas.NoticeList:
        contract = await bank_events.assign_suspense(
            db,
            keys,
            transfer_id=_id(transfer_id, "挂账款项"),
            notice_id=data.notice_id,
            now=clock.now(),
        )
        return await notices.notice_list(
            db, contract, pay_base=bank.pay_page_base, pay_secret=bank.pay_link_secret
        )


class PaymentNoticeController(Controller):
    path = "/api/v1"
    tags = ("escrow",)
    guards = [logged_in]  # noqa: RUF012

    @get(
        "/contracts/{contract_id:str}/payment-notices",
        summary="资金缴款通知单: due, paid, status (staff, regulators, parties)",
    )
    async def notices(
        self,
        contract_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        bank: NamedDependency[BankLink],
    ) -> schemas.NoticeList:
        contract = await notices.readable_contract(db, principal, _id(contract_id, "合同"))
        return await notices.notice_list(
            db, contract, pay_base=bank.pay_page_base, pay_secret=bank.pay_link_secret
        )

    @get(
        "/payment-notices/{notice_id:str}/qr.png",
        media_type="image/png",
        summary="缴款二维码 (opens the bank's payment page)",
    )
    async def qr(
        self,
        notice_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        bank: NamedDependency[BankLink],
    ) -> Response[bytes]:
        url = await notices.pay_page_of(
            db,
            principal,
            _id(notice_id, "缴款通知"),
            pay_base=bank.pay_page_base,
            pay_secret=bank.pay_link_secret,
        )
        return Response(
            qr_png(url),
            media_type="image/png",
            headers={"Cache-Control": "private, no-store"},
        )

    @get(
        "/payment-notices/{notice_id:str}/receipt.pdf",
        media_type="application/pdf",
        summary="缴款凭证 (PDF, once the notice is paid in full)",
    )
    async def receipt(
        self,
        notice_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> Response[bytes]:
        name, pdf = await receipts.receipt_pdf(
            db,
            principal,
            _id(notice_id, "缴款通知"),
            font=load_font(settings.pdf_font),
            now=clock.now(),
        )
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Cache-Control": "private, no-store",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            },
        )


class BankWebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ("escrow",)

    @post(
        "/bank",
        status_code=200,
        summary="银行回调 (X-Bank-Signature t=,v1= HMAC, or X-Bank-Signature-Cert t=,sig=)",
    )
    async def bank_event(
        self, request: Request[Any, Any, Any], webhook_intake: NamedDependency[WebhookIntake]
    ) -> schemas.WebhookAnswer:
        return await webhook_intake.receive(
            await request.body(),
            hmac_header=request.headers.get(signature.HEADER),
            certificate_header=request.headers.get(signature.CERT_HEADER),
        )


class BankInstructionController(Controller):
    """For a bank that pulls approved instructions instead of taking them at its gateway.
    Both calls are signed like webhooks (``X-Bank-Signature``): the GET over
    ``GET /api/v1/webhooks/bank/instructions`` as its body, the acknowledgement over its body."""

    path = "/api/v1/webhooks/bank/instructions"
    tags = ("escrow",)

    @get("/", summary="待执行的支付指令 (the bank pulls; signed)")
    async def pending(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        keys: NamedDependency[ServiceKeys],
        bank: NamedDependency[BankLink],
    ) -> schemas.PendingInstructions:
        now = clock.now()
        signature.verify(
            request.headers.get(signature.HEADER),
            b"GET /api/v1/webhooks/bank/instructions",
            list(bank.webhook_secrets),
            now_unix=now.timestamp(),
            tolerance=settings.bank_webhook_tolerance_seconds,
        )
        found = await bank_gateway.pending_instructions(db, keys, now=now)
        return schemas.PendingInstructions(items=[msgspec.to_builtins(i) for i in found])

    @post("/{instruction_id:str}/ack", status_code=200, summary="银行确认收到指令 (signed)")
    async def acknowledge(
        self,
        instruction_id: FromPath[str],
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        settings: NamedDependency[Settings],
        bank: NamedDependency[BankLink],
    ) -> dict[str, bool]:
        body = await request.body()
        now = clock.now()
        signature.verify(
            request.headers.get(signature.HEADER),
            body,
            list(bank.webhook_secrets),
            now_unix=now.timestamp(),
            tolerance=settings.bank_webhook_tolerance_seconds,
        )
        try:
            ack = msgspec.json.decode(body, type=schemas.InstructionAck)
        except msgspec.DecodeError:
            raise DomainError("bank_event_invalid", "银行确认内容不符合协议。") from None
        if not await bank_gateway.acknowledge(
            db, _id(instruction_id, "支付指令"), ack.bank_reference, now=now
        ):
            raise DomainError.not_found("支付指令")
        return {"acknowledged": True}


ROUTES = [
    EscrowController,
    PaymentNoticeController,
    BankWebhookController,
    BankInstructionController,
]
