"""Finding 6 of the outside review: a field that reaches a signing certificate is checked
at the order's creation with the certificate's own limits, so no order is created that no
one can sign (a blank name used to be stored as "" and fail every signature with a 500)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.register.models import Company
from signing.certificates import CertificateIssueError, Signer
from tests.api.contracts.helpers import ZHANG, create, demo, order_body, problem
from tests.api.identity.helpers import agree_to_pi_notice, bearer, login_phone

NAMES_NO_CERTIFICATE_CAN_CARRY = [
    "  ",
    "\u3000",  # an ideographic space only
    "\u200b",  # a zero-width space: looks blank, is not whitespace to str.split
    "张\x00三",
    "张\u0007三",
    "\u202e三张",  # a right-to-left override
]


@pytest.mark.parametrize("name", NAMES_NO_CERTIFICATE_CAN_CARRY)
async def test_a_buyer_name_no_certificate_can_carry_is_refused_at_creation(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    name: str,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    body = order_body(d.units["201"], ZHANG)
    body["buyers"][0]["name"] = name
    assert problem(await create(mock_client, d.agent, body)) == (422, "party_name_invalid")
    # The unit is not held by an order no one can sign.
    fine = await create(mock_client, d.agent, order_body(d.units["201"], ZHANG))
    assert fine.status_code == 201, fine.text


def test_every_name_accepted_fits_a_certificate() -> None:
    from api.contracts.people import checked_name

    for name in ["张三", "欧阳 娜娜", "Anna Müller", "阿卜杜·热合曼", "张" * 30]:
        accepted = checked_name(name, role="buyer", position=0)
        Signer(accepted, "ab" * 32, "buyer")  # type: ignore[arg-type]
    with pytest.raises(CertificateIssueError):
        Signer("", "ab" * 32, "buyer")  # type: ignore[arg-type]


async def test_a_developer_name_too_long_for_the_seal_certificate_is_refused_at_creation(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    await session.execute(update(Company).values(name="很长的名字" * 13))  # 65 characters
    await session.commit()
    refused = await create(mock_client, d.agent, order_body(d.units["201"], ZHANG))
    assert problem(refused) == (409, "seal_unavailable")


@pytest.mark.parametrize("name", ["\u200b\u200b", "张\x00三", "\u202e三张"])
async def test_real_name_refuses_names_no_certificate_can_carry(
    mock_client: httpx.AsyncClient, name: str
) -> None:
    token = await login_phone(mock_client, "13900000077")
    await agree_to_pi_notice(mock_client, token)
    refused = await mock_client.post(
        "/api/v1/me/real-name",
        json={"name": name, "id_number": ZHANG.id_number},
        headers=bearer(token),
    )
    assert problem(refused) == (422, "name_invalid")
