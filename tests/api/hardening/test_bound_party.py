"""Finding 4 of the outside review: a buyer typed as "赵六" with 王五's ID number was
scanned and signed by face-verified 王五 (the certificate named 赵六), and the password
SMS went to the phone the agent typed. At scan the party's name must be the verified real
name; the contract's messages go to the bound citizen's proven phone."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.outbox.models import OutboxMessage
from tests.api.contracts.helpers import (
    WANG,
    ZHANG,
    create,
    demo,
    face_verified,
    order_body,
    pay_notice,
    problem,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer
from tests.api.outbox.helpers import recipient

TYPED_PHONE = "13700000123"  # what the agent typed: nobody's proven phone


async def _issued(
    client: httpx.AsyncClient, agent: str, body: dict[str, object]
) -> dict[str, object]:
    created = await create(client, agent, body)
    assert created.status_code == 201, created.text
    issued = await client.post(
        f"/api/v1/contracts/{created.json()['id']}/issue", headers=bearer(agent)
    )
    assert issued.status_code == 200, issued.text
    await pay_notice(client, agent, created.json()["id"], "deposit")
    return issued.json()


async def test_a_party_under_another_name_cannot_be_bound(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    body = order_body(d.units["201"], WANG)
    body["buyers"][0]["name"] = "赵六"
    issued = await _issued(mock_client, d.agent, body)
    wang = await face_verified(mock_client, WANG)
    assert problem(await scan(mock_client, wang, issued["scene"])) == (403, "name_mismatch")
    challenge = await mock_client.post(
        f"/api/v1/contracts/{issued['order']['id']}/signatures/challenge", headers=bearer(wang)
    )
    assert challenge.status_code == 403, challenge.text


async def test_contract_messages_go_to_the_bound_citizens_proven_phone(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    body = order_body(d.units["201"], ZHANG)
    body["buyers"][0]["phone"] = TYPED_PHONE
    issued = await _issued(mock_client, d.agent, body)
    order_id = issued["order"]["id"]
    zhang = await face_verified(mock_client, ZHANG)
    assert (await scan(mock_client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(mock_client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    sealed = await seal(mock_client, d, order_id)
    assert sealed.status_code == 200, sealed.text

    async with database.reader() as reader:
        messages = list(
            await reader.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "contract_signed")
            )
        )
    assert [recipient(keys, m) for m in messages] == [ZHANG.phone]
    async with database.reader() as reader:
        to_typed = list(
            await reader.scalars(
                select(OutboxMessage.template).where(
                    OutboxMessage.recipient_phone_index == keys.phone_index(TYPED_PHONE)
                )
            )
        )
    # Before anyone was bound, the invitation and the deposit news went where the agent
    # said (there was nobody else to tell); nothing after the binding.
    assert sorted(to_typed) == ["deposit_arrived", "sign_invitation"]
