"""Who may read and act: company admins of their own projects, regulators, and nobody
else; the payment notice QR; the mock bank page end to end."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urljoin

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow.notices import create_payment_notices
from api.identity.models import StaffRole
from api.identity.staff import create_staff_member
from api.register import service as register
from api.settings import Settings
from signing.gb_codes import credit_code_check_char
from tests.api.escrow.helpers import (
    ACCOUNT_NUMBER,
    AGENT,
    BUYER,
    MILESTONES,
    contract_notices,
    notices,
    setup,
    statement,
)
from tests.api.identity.helpers import bearer, login_phone

OTHER_ADMIN = "13800000099"


async def _other_company_admin(
    client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> tuple[dict[str, str], uuid.UUID]:
    body = "91440101MA5CTEW77"
    company = await register.create_company(
        session, name="另一家置业有限公司", uscc=body + credit_code_check_char(body), now=clock.now()
    )
    project = await register.create_project(
        session, company_id=company.id, name="另一个项目", now=clock.now()
    )
    await create_staff_member(
        session,
        keys,
        name="孙管理",
        phone=OTHER_ADMIN,
        role=StaffRole.company_admin,
        company_id=company.id,
        now=clock.now(),
    )
    await session.commit()
    return bearer(await login_phone(client, OTHER_ADMIN)), project.id


async def test_roles_and_companies(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    other, other_project = await _other_company_admin(mock_client, session, keys, clock)
    citizen = bearer(await login_phone(mock_client, BUYER))
    agent = bearer(await login_phone(mock_client, AGENT))
    account = f"/api/v1/escrow/accounts/{escrow.account_id}"
    notices_path = f"/api/v1/contracts/{escrow.contract_id}/payment-notices"

    # Citizens are not staff; another company sees nothing of ours.
    assert (await mock_client.get(f"{account}/statement", headers=citizen)).status_code == 403
    assert (await mock_client.get(f"{account}/statement", headers=other)).status_code == 404
    assert (await mock_client.get(notices_path, headers=other)).status_code == 404
    assert (await mock_client.get(notices_path, headers=citizen)).status_code == 404
    assert (await mock_client.get(notices_path)).status_code == 401
    release = {"amount_fen": 1, "milestone": "completed"}
    assert (
        await mock_client.post(f"{account}/releases", headers=other, json=release)
    ).status_code == 404
    assert (
        await mock_client.post(f"{account}/releases", headers=agent, json=release)
    ).status_code == 403
    assert (
        await mock_client.post(f"{account}/releases", headers=citizen, json=release)
    ).status_code == 403
    listed = await mock_client.get("/api/v1/escrow/accounts", headers=other)
    assert listed.json()["items"] == []
    # Staff of the company (an agent too) and regulators read statements and notices.
    assert (await mock_client.get(f"{account}/statement", headers=agent)).status_code == 200
    assert (await mock_client.get(notices_path, headers=escrow.regulator)).status_code == 200
    regulator_list = await mock_client.get("/api/v1/escrow/accounts", headers=escrow.regulator)
    # The project's account and the city's resale account (存量房交易资金监管).
    assert sorted(
        (a["scope"], a["account_number_masked"]) for a in regulator_list.json()["items"]
    ) == [("project", "6222 **** **** 3445"), ("resale", "6222 **** **** 7665")]
    assert ACCOUNT_NUMBER not in regulator_list.text
    # An account for another company's project cannot be registered; nor can a regulator
    # approve twice, nor a company admin approve at all.
    foreign = await mock_client.post(
        "/api/v1/escrow/accounts",
        headers=escrow.admin,
        json={
            "project_id": str(other_project),
            "bank_name": "银行",
            "account_name": "户名",
            "account_number": "6222000011112222",
            "milestones": MILESTONES,
        },
    )
    assert foreign.status_code == 404
    twice = await mock_client.post(f"{account}/approve", headers=escrow.regulator, json={})
    assert twice.json()["code"] == "account_already_reviewed"
    assert (
        await mock_client.post(f"{account}/approve", headers=escrow.admin, json={})
    ).status_code == 403

    # The citizen who signed a contract (escrow's own record of its parties, written when
    # contracts hand it over) reads its notices and their QR codes; nobody else's.
    me = (await mock_client.get("/api/v1/me", headers=citizen)).json()
    theirs = await contract_notices(
        session, keys, clock, escrow.world, citizen_id=uuid.UUID(me["id"])
    )
    theirs_path = f"/api/v1/contracts/{theirs}/payment-notices"
    listed = await mock_client.get(theirs_path, headers=citizen)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
    qr = await mock_client.get(listed.json()["items"][0]["qr_png"], headers=citizen)
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG")
    assert (await mock_client.get(notices_path, headers=citizen)).status_code == 404
    assert (await mock_client.get(theirs_path, headers=other)).status_code == 404
    assert (await mock_client.get(theirs_path, headers=agent)).status_code == 200


async def test_no_notices_without_an_approved_account(
    session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    from api.demo import load_demo_world

    world = await load_demo_world(session, keys, now=clock.now(), supervised_account=False)
    try:
        await create_payment_notices(
            session,
            keys,
            contract_id=uuid.uuid4(),
            contract_number="YS1",
            project_id=uuid.UUID(world["project"]["id"]),
            company_id=uuid.UUID(world["company"]["id"]),
            buyers=[],
            deposit_fen=1,
            down_payment_fen=1,
            estate="e",
            building="b",
            room="r",
            now=clock.now(),
        )
    except DomainError as problem:
        assert problem.code == "supervised_account_missing"
    else:
        raise AssertionError("notices without an account")


async def test_qr_and_mock_bank_page_pay_end_to_end(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings, deposit_fen=12_345)
    notice = escrow.notices["deposit"]
    # Calling the service again for the same contract gives the same notices.
    again = await create_payment_notices(
        session,
        keys,
        contract_id=escrow.contract_id,
        contract_number="ignored",
        project_id=uuid.UUID(escrow.world["project"]["id"]),
        company_id=uuid.UUID(escrow.world["company"]["id"]),
        buyers=[],
        deposit_fen=1,
        down_payment_fen=1,
        estate="",
        building="",
        room="",
        now=clock.now(),
    )
    again_refs = sorted(n.reference for n in again)
    await session.rollback()
    assert again_refs == sorted(n["reference"] for n in escrow.notices.values())
    qr = await mock_client.get(notice["qr_png"], headers=escrow.admin)
    assert qr.status_code == 200
    assert qr.headers["content-type"] == "image/png"
    assert qr.content.startswith(b"\x89PNG")
    assert (await mock_client.get(notice["qr_png"])).status_code == 401
    assert (
        await mock_client.get("/api/v1/payment-notices/not-an-id/qr.png", headers=escrow.admin)
    ).status_code == 404

    # The page the QR opens (its URL as the QR encodes it, signed), then the pay button.
    page_path = notice["pay_url"].removeprefix("http://testserver")
    assert f"reference={notice['reference']}&amount_fen=12345&account={ACCOUNT_NUMBER}&sig=" in page_path
    page = await mock_client.get(page_path)
    assert page.status_code == 200
    assert "确认支付" in page.text and "6222 **** **** 3445" in page.text
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    target = urljoin(page_path, action.group(1))
    assert target == "/mock/bank/pay"
    paid = await mock_client.post(
        target,
        data={
            "reference": notice["reference"],
            "account": ACCOUNT_NUMBER,
            "amount_fen": "12345",
            "payer_name": "张三",
        },
    )
    assert paid.status_code == 200
    assert "支付成功" in paid.text
    after = (await notices(mock_client, escrow))["deposit"]
    assert (after["status"], after["paid_fen"], after["closed"]) == ("paid", 12_345, True)
    events = (await mock_client.get("/mock/bank/events")).json()
    assert [(e["type"], e["status"]) for e in events] == [("payment.received", 200)]
    assert (await statement(mock_client, escrow))["balances"]["bank_balance_fen"] == 12_345
