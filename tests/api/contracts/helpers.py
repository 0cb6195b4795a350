"""Steps shared by the contract tests, over HTTP against the app with mocks enabled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.demo import PEOPLE, DemoPerson, load_demo_world
from tests.api.identity.helpers import agree_to_pi_notice, bearer, inbox, login_phone

AGENT = next(p for p in PEOPLE if p.role == "sales_agent")
SEAL_KEEPER = next(p for p in PEOPLE if p.role == "seal_keeper")
ZHANG = next(p for p in PEOPLE if p.name == "张三")
LI = next(p for p in PEOPLE if p.name == "李四")
WANG = next(p for p in PEOPLE if p.name == "王五")  # the demo seller: a stranger to these orders


@dataclass
class Demo:
    world: dict[str, Any]
    units: dict[str, str]  # room_no -> unit id
    agent: str  # bearer tokens
    seal_keeper: str


async def demo(
    client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> Demo:
    world = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    agent = await login_phone(client, AGENT.phone)
    seal_keeper = await login_phone(client, SEAL_KEEPER.phone)
    units = {u["room_no"]: u["id"] for u in world["units"]}
    return Demo(world, units, agent, seal_keeper)


async def finish_face_page(client: httpx.AsyncClient, url: str) -> None:
    parts = urlsplit(url)
    token = parse_qs(parts.query)["biz_token"][0]
    done = await client.post(
        "/mock/face/page/complete", data={"biz_token": token, "result": "pass"}
    )
    assert done.status_code == 303


async def face_verified(client: httpx.AsyncClient, person: DemoPerson) -> str:
    """Log in by phone, pass real-name and face verification through the mocks."""
    token = await login_phone(client, person.phone)
    await prove_identity(client, token, person)
    return token


async def prove_identity(client: httpx.AsyncClient, token: str, person: DemoPerson) -> None:
    """Consent, real-name and face verification through the mocks, for a logged-in citizen."""
    await agree_to_pi_notice(client, token)
    named = await client.post(
        "/api/v1/me/real-name",
        json={"name": person.name, "id_number": person.id_number},
        headers=bearer(token),
    )
    assert named.status_code == 200, named.text
    face = (await client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    await finish_face_page(client, face["url"])
    result = await client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert result.json()["identity_level"] == "face_verified", result.text


def order_body(unit_id: str, *buyers: DemoPerson, **overrides: Any) -> dict[str, Any]:
    shares = {1: [""], 2: ["1/2", "1/2"], 3: ["1/3", "1/3", "1/3"]}[len(buyers)]
    body: dict[str, Any] = {
        "unit_id": unit_id,
        "kind": "presale",
        "buyers": [
            {"name": b.name, "id_number": b.id_number, "phone": b.phone, "share": share}
            for b, share in zip(buyers, shares, strict=True)
        ],
        "price_fen": 2_000_000_00,
        "payment_method": "commercial_loan",
        "deposit_fen": 50_000_00,
        "down_payment_fen": 600_000_00,
        "delivery_date": "2028-06-30",
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/contracts", json=body, headers=bearer(token))


async def create_issued(
    client: httpx.AsyncClient, d: Demo, room: str, *buyers: DemoPerson, pay: bool = True
) -> dict[str, Any]:
    """Create and issue an order; ``pay`` pays its deposit notice (opened at issue) in
    full through the mock bank, so buyers may sign."""
    created = await create(client, d.agent, order_body(d.units[room], *buyers))
    assert created.status_code == 201, created.text
    issued = await client.post(
        f"/api/v1/contracts/{created.json()['id']}/issue", headers=bearer(d.agent)
    )
    assert issued.status_code == 200, issued.text
    if pay:
        await pay_notice(client, d.agent, created.json()["id"], "deposit")
    return issued.json()


async def pay_notice(
    client: httpx.AsyncClient, token: str, order_id: str, kind: str, *, amount_fen: int = 0
) -> dict[str, Any]:
    """Pay a payment notice through the mock bank, which sends its signed webhook; the
    whole amount still due unless ``amount_fen`` says otherwise."""
    listed = await client.get(
        f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(token)
    )
    assert listed.status_code == 200, listed.text
    notice = next(n for n in listed.json()["items"] if n["kind"] == kind)
    query = parse_qs(urlsplit(notice["pay_url"]).query)
    paid = await client.post(
        "/mock/bank/payments",
        json={
            "reference": query["reference"][0],
            "amount_fen": amount_fen or int(query["amount_fen"][0]),
            "account": query["account"][0],
        },
    )
    assert paid.status_code == 200, paid.text
    return paid.json()


async def scan(client: httpx.AsyncClient, token: str, scene: str) -> httpx.Response:
    return await client.post("/api/v1/scan", json={"scene": scene}, headers=bearer(token))


async def latest_code(client: httpx.AsyncClient, phone: str) -> str:
    return (await inbox(client, phone))[0]["params"]["code"]


async def sign(
    client: httpx.AsyncClient, token: str, order_id: str, phone: str
) -> tuple[httpx.Response, dict[str, Any]]:
    """Ask for a signing code, read it from the mock inbox, sign."""
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(token)
    )
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, phone),
    }
    signed = await client.post(
        f"/api/v1/contracts/{order_id}/signatures", json=body, headers=bearer(token)
    )
    return signed, body


async def seal(
    client: httpx.AsyncClient, d: Demo, order_id: str, clock: MovableClock | None = None
) -> httpx.Response:
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, SEAL_KEEPER.phone),
    }
    if clock is not None:
        clock.advance(timedelta(seconds=1))
    return await client.post(
        f"/api/v1/contracts/{order_id}/seal", json=body, headers=bearer(d.seal_keeper)
    )


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


@dataclass
class Signed:
    """A sealed contract and who signed it (bearer tokens by person)."""

    order_id: str
    number: str
    password: str
    scene: str
    tokens: dict[str, str]
    order: dict[str, Any]


async def signed_contract(
    client: httpx.AsyncClient, d: Demo, room: str, *buyers: DemoPerson
) -> Signed:
    """An order on ``room`` taken all the way: issued, deposit paid, every buyer face-
    verified, scanned and signed, and sealed by the developer."""
    issued = await create_issued(client, d, room, *buyers)
    order_id = issued["order"]["id"]
    tokens = {}
    for buyer in buyers:
        tokens[buyer.name] = await face_verified(client, buyer)
        assert (await scan(client, tokens[buyer.name], issued["scene"])).status_code == 200
        signed, _ = await sign(client, tokens[buyer.name], order_id, buyer.phone)
        assert signed.status_code == 200, signed.text
    sealed = await seal(client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    done = sealed.json()
    return Signed(
        order_id, done["contract_number"], done["password"], issued["scene"], tokens, done["order"]
    )


async def relogin(client: httpx.AsyncClient, d: Demo) -> None:
    """Staff log in again after the clock moved past their sessions' idle time."""
    d.agent = await login_phone(client, AGENT.phone)
    d.seal_keeper = await login_phone(client, SEAL_KEEPER.phone)


# ---------------------------------------------------------------- resale (存量房)

SELLER = WANG  # the demo title's owner


def resale_body(title_id: str, *buyers: DemoPerson, **overrides: Any) -> dict[str, Any]:
    """A resale contract as the seller fills it: one owner, supervised funds."""
    body: dict[str, Any] = {
        "title_id": title_id,
        "buyers": [
            {"name": b.name, "id_number": b.id_number, "phone": b.phone, "share": ""}
            for b in buyers
        ],
        "seller_phones": [""],
        "price_fen": 1_800_000_00,
        "payment_method": "commercial_loan",
        "deposit_fen": 20_000_00,
        "down_payment_fen": 520_000_00,
        "delivery_date": "2027-03-31",
        "taxes_borne_by": "by_law",
        "funds_supervised": True,
        "seller_account": {"bank_name": "示范银行老城支行", "account_number": "6217000012345678"},
    }
    body.update(overrides)
    return body


async def check_title(
    client: httpx.AsyncClient, token: str, certificate_no: str, check_code: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/resale/title-checks",
        json={"certificate_no": certificate_no, "check_code": check_code},
        headers=bearer(token),
    )


async def resale_issued(
    client: httpx.AsyncClient, d: Demo, seller: str, *buyers: DemoPerson, **overrides: Any
) -> dict[str, Any]:
    """The demo title checked by its owner (token ``seller``), the contract filled for
    ``buyers`` and issued: the answer of the issue (order, scene, QR urls)."""
    title = d.world["resale_title"]
    checked = await check_title(client, seller, title["certificate_no"], title["check_code"])
    assert checked.status_code == 200, checked.text
    created = await client.post(
        "/api/v1/resale/orders",
        json=resale_body(title["id"], *buyers, **overrides),
        headers=bearer(seller),
    )
    assert created.status_code == 201, created.text
    issued = await client.post(
        f"/api/v1/contracts/{created.json()['id']}/issue", headers=bearer(seller)
    )
    assert issued.status_code == 200, issued.text
    return issued.json()


async def resale_contract(
    client: httpx.AsyncClient, d: Demo, *buyers: DemoPerson, **overrides: Any
) -> Signed:
    """The demo title sold to ``buyers`` all the way to 已签约: checked, filled, issued,
    scanned and signed by every party, submitted by the seller."""
    seller = await face_verified(client, SELLER)
    issued = await resale_issued(client, d, seller, *buyers, **overrides)
    order_id = issued["order"]["id"]
    tokens = {SELLER.name: seller}
    for buyer in buyers:
        tokens[buyer.name] = await face_verified(client, buyer)
        assert (await scan(client, tokens[buyer.name], issued["scene"])).status_code == 200
    for person in (*buyers, SELLER):
        signed, _ = await sign(client, tokens[person.name], order_id, person.phone)
        assert signed.status_code == 200, signed.text
    submitted = await client.post(f"/api/v1/contracts/{order_id}/submit", headers=bearer(seller))
    assert submitted.status_code == 200, submitted.text
    done = submitted.json()
    return Signed(
        order_id, done["contract_number"], done["password"], issued["scene"], tokens, done["order"]
    )
