"""Escrow routes: supervised accounts, statements, releases, suspense, payment notices and
the bank's signed webhook."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.escrow import schemas, service, signature
from api.identity.models import StaffRole
from api.identity.routes import logged_in, staff_only, staff_roles
from api.identity.service import Principal
from api.register import service as register
from api.settings import Settings
from signing.qr import qr_png

# Who else may read a contract's payment notices (the contract's parties): the contracts
# context may put ``async (session, principal, contract_id) -> bool`` on the app state
# under this name. Staff of the contract's company and regulators may always read.
PARTY_CHECK_STATE = "escrow_party_check"
PartyCheck = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[bool]]


def webhook_secrets(settings: Settings) -> list[str]:
    """The configured secrets; with mocks enabled and none configured, the demo secret."""
    configured = [s.strip() for s in settings.bank_webhook_secrets.split(",") if s.strip()]
    if configured or not settings.mocks_enabled:
        return configured
    from api.demo import bank_webhook_secret

    return [bank_webhook_secret(settings.master_secret())]


def pay_page_base(settings: Settings) -> str:
    if settings.bank_pay_url:
        return settings.bank_pay_url
    if settings.mocks_enabled:
        return settings.public_base_url.rstrip("/") + "/mock/bank/pay"
    return ""


def _id(raw: str, what: str) -> uuid.UUID:
    return parse_id(raw, what=what)


class EscrowController(Controller):
    path = "/api/v1/escrow"
    tags = ("escrow",)
    guards = [staff_only]  # noqa: RUF012

    @post(
        "/accounts",
        guards=[staff_roles(StaffRole.company_admin)],
        summary="登记预售资金监管账户 (company admin; a regulator approves)",
    )
    async def create_account(
        self,
        data: JSONBody[schemas.NewSupervisedAccount],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        projects = await register.get_projects(db, [data.project_id])
        account = await service.create_supervised_account(
            db,
            principal,
            data,
            project_company_id=projects[0].company_id if projects else None,
            now=clock.now(),
        )
        return service.account_answer(account)

    @get("/accounts", summary="监管账户 (own company; regulators: all)")
    async def list_accounts(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.SupervisedAccountList:
        accounts = await service.list_accounts(db, principal)
        return schemas.SupervisedAccountList(items=[service.account_answer(a) for a in accounts])

    async def _review_account(
        self, db: AsyncSession, clock: Clock, principal: Principal, raw: str, data: Any, ok: bool
    ) -> schemas.SupervisedAccountAnswer:
        account = await service.review_account(
            db, principal, _id(raw, "监管账户"), approve=ok, reason=data.reason, now=clock.now()
        )
        return service.account_answer(account)

    @post(
        "/accounts/{account_id:str}/approve",
        status_code=200,
        guards=[staff_roles(StaffRole.regulator)],
        summary="审核通过监管账户 (regulator)",
    )
    async def approve_account(
        self,
        account_id: FromPath[str],
        data: JSONBody[schemas.Review],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.SupervisedAccountAnswer:
        return await self._review_account(db, clock, principal, account_id, data, True)

    @post(
        "/accounts/{account_id:str}/reject",
        status_code=200,
        guards=[staff_roles(StaffRole.regulator)],
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

    @get("/accounts/{account_id:str}/statement", summary="监管账户对账单 (staff, regulators)")
    async def statement(
        self,
        account_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.Statement:
        account = await service.readable_account(db, principal, _id(account_id, "监管账户"))
        return await service.statement(db, account, now=clock.now())

    @post(
        "/accounts/{account_id:str}/releases",
        guards=[staff_roles(StaffRole.company_admin)],
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
        instruction = await service.request_release(
            db,
            principal,
            _id(account_id, "监管账户"),
            amount_fen=data.amount_fen,
            milestone=data.milestone,
            note=data.note,
            now=clock.now(),
        )
        return service.instruction_answer(instruction)

    async def _review_release(
        self, db: AsyncSession, clock: Clock, principal: Principal, raw: str, data: Any, ok: bool
    ) -> schemas.InstructionAnswer:
        instruction = await service.review_release(
            db, principal, _id(raw, "支取申请"), approve=ok, reason=data.reason, now=clock.now()
        )
        return service.instruction_answer(instruction)

    @post(
        "/releases/{release_id:str}/approve",
        status_code=200,
        guards=[staff_roles(StaffRole.regulator)],
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
        guards=[staff_roles(StaffRole.regulator)],
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
        guards=[staff_roles(StaffRole.regulator)],
        summary="挂账资金 (payments nobody could match; regulators)",
    )
    async def suspense(self, db: NamedDependency[AsyncSession]) -> schemas.SuspenseList:
        return await service.suspense_items(db)

    @post(
        "/suspense/{transfer_id:str}/assign",
        status_code=200,
        guards=[staff_roles(StaffRole.regulator)],
        summary="挂账资金匹配到缴款通知 (regulator; a correcting transfer)",
    )
    async def assign_suspense(
        self,
        transfer_id: FromPath[str],
        data: JSONBody[schemas.AssignSuspense],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        settings: NamedDependency[Settings],
    ) -> schemas.NoticeList:
        contract = await service.assign_suspense(
            db,
            keys,
            transfer_id=_id(transfer_id, "挂账款项"),
            notice_id=data.notice_id,
            now=clock.now(),
        )
        return schemas.NoticeList(
            contract_id=contract.contract_id,
            items=await service.notice_answers(db, contract, pay_base=pay_page_base(settings)),
        )


async def _readable_contract(
    db: AsyncSession, state: State, principal: Principal, contract_id: uuid.UUID
) -> Any:
    contract = await service.escrow_contract(db, contract_id)
    if contract is None:
        raise DomainError.not_found("缴款通知")
    if service.can_read_company(principal, contract.company_id):
        return contract
    party_check: PartyCheck | None = state.get(PARTY_CHECK_STATE)
    if party_check is not None and await party_check(db, principal, contract_id):
        return contract
    raise DomainError.not_found("缴款通知")


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
        state: State,
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> schemas.NoticeList:
        cid = _id(contract_id, "合同")
        contract = await _readable_contract(db, state, principal, cid)
        return schemas.NoticeList(
            contract_id=cid,
            items=await service.notice_answers(db, contract, pay_base=pay_page_base(settings)),
        )

    @get(
        "/payment-notices/{notice_id:str}/qr.png",
        media_type="image/png",
        summary="缴款二维码 (opens the bank's payment page)",
    )
    async def qr(
        self,
        notice_id: FromPath[str],
        state: State,
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> Response[bytes]:
        found = await service.notice_pay_target(db, _id(notice_id, "缴款通知"))
        if found is None:
            raise DomainError.not_found("缴款通知")
        notice, contract, account = found
        await _readable_contract(db, state, principal, contract.contract_id)
        base = pay_page_base(settings)
        if not base:
            raise DomainError("bank_not_configured", "未配置银行缴款页面。")
        paid = (await service.paid_by_notice(db, [notice.id]))[notice.id]
        url = service.pay_url(base, notice.reference, notice.due_fen - paid, account.account_number)
        if url is None:
            raise DomainError("notice_closed", "该缴款通知已缴清，无需再次缴款。")
        return Response(
            qr_png(url),
            media_type="image/png",
            headers={"Cache-Control": "private, no-store"},
        )


class BankWebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ("escrow",)

    @post("/bank", status_code=200, summary="银行回调 (signed: X-Bank-Signature t=,v1=)")
    async def bank(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        settings: NamedDependency[Settings],
    ) -> schemas.WebhookAnswer:
        body = await request.body()
        secrets = request.app.state.get("escrow_bank_secrets")
        if secrets is None:
            secrets = webhook_secrets(settings)
            request.app.state["escrow_bank_secrets"] = secrets
        now = clock.now()
        signature.verify(
            request.headers.get(signature.HEADER),
            body,
            secrets,
            now_unix=now.timestamp(),
            tolerance=settings.bank_webhook_tolerance_seconds,
        )
        return await service.ingest_bank_event(db, keys, body=body, now=now)


ROUTES = [EscrowController, PaymentNoticeController, BankWebhookController]
