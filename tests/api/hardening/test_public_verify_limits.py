"""Finding 7 of the outside review: five wrong passwords from five IP addresses locked a
contract number for an hour even for the right password, and 30 concurrent wrong guesses
from one address all got through the 5-per-number and 20-per-IP limits (peek, check and
hit were not atomic). Counting is atomic now, and wrong guesses back off instead of a lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from tests.api.contracts.helpers import ZHANG, demo, signed_contract

VERIFY = "/api/v1/public/verify"


@asynccontextmanager
async def _from(app: Litestar, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _wrong(password: str, n: int) -> str:
    return f"{(int(password) + 1 + n) % 100_000_000:08d}"


async def _guess(app: Litestar, ip: str, number: str, password: str) -> httpx.Response:
    async with _from(app, ip) as client:
        return await client.get(VERIFY, params={"number": number, "password": password})


async def test_wrong_guesses_from_many_addresses_do_not_lock_out_the_right_password(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await signed_contract(mock_client, d, "301", ZHANG)
    for n in range(5):
        wrong = await _guess(mock_app, f"10.0.0.{n}", contract.number, _wrong(contract.password, n))
        assert wrong.status_code == 200 and wrong.json()["genuine"] is False
    right = await _guess(mock_app, "10.0.1.1", contract.number, contract.password)
    assert right.status_code == 200 and right.json()["genuine"] is True

    # Many more wrong ones: they back off (a pause that doubles, at most a minute), and the
    # holder waits at most that long, never an hour.
    refused = 0
    for n in range(40):
        clock.advance(timedelta(seconds=1))
        wrong = await _guess(mock_app, f"10.0.2.{n}", contract.number, _wrong(contract.password, n))
        if wrong.status_code == 429:
            refused += 1
            assert 1 <= int(wrong.headers["Retry-After"]) <= 60
    assert refused > 20  # the wrong ones were slowed down
    holder = await _guess(mock_app, "10.0.1.1", contract.number, contract.password)
    if holder.status_code == 429:
        wait = int(holder.headers["Retry-After"])
        assert wait <= 60
        clock.advance(timedelta(seconds=wait))
        holder = await _guess(mock_app, "10.0.1.1", contract.number, contract.password)
    assert holder.status_code == 200 and holder.json()["genuine"] is True


async def test_a_password_found_right_is_answered_at_once_while_guesses_wait(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    """A right password just checked is answered from the cache without counting: it is no
    guess (only a genuine answer is kept), so the pause the wrong guesses earned is not its."""
    d = await demo(mock_client, session, keys, clock)
    contract = await signed_contract(mock_client, d, "302", ZHANG)
    first = await _guess(mock_app, "10.3.0.1", contract.number, contract.password)
    assert first.status_code == 200 and first.json()["genuine"] is True
    answers = [
        await _guess(mock_app, f"10.3.1.{n}", contract.number, _wrong(contract.password, n))
        for n in range(8)
    ]
    assert answers[-1].status_code == 429  # the number is in its pause for wrong guesses
    holder = await _guess(mock_app, "10.3.0.1", contract.number, contract.password)
    assert holder.status_code == 200 and holder.json() == first.json()
    assert holder.headers["cache-control"] == "no-store"
    # A wrong one right after is still refused: the holder's answer opened nothing.
    again = await _guess(mock_app, "10.3.2.1", contract.number, _wrong(contract.password, 9))
    assert again.status_code == 429


async def test_concurrent_wrong_guesses_from_one_address_stop_at_the_limit(
    mock_app: Litestar,
) -> None:
    answers = await asyncio.gather(
        *(_guess(mock_app, "10.9.9.9", f"YS2026{n:08d}", "12345678") for n in range(30))
    )
    checked = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert len(checked) == 20 and len(limited) == 10


async def test_concurrent_wrong_guesses_on_one_number_are_checked_one_pause_at_a_time(
    mock_app: Litestar,
) -> None:
    answers = await asyncio.gather(
        *(_guess(mock_app, f"10.8.0.{n}", "YS202600000001", "12345678") for n in range(30))
    )
    checked = [a for a in answers if a.status_code == 200]
    # The first five of the hour, then one check per pause: 6 at most in one instant.
    assert len(checked) == 6
    assert all(a.status_code == 429 for a in answers if a not in checked)


async def test_refusals_in_a_pause_spend_nothing_of_the_address_budget(
    mock_app: Litestar, clock: MovableClock
) -> None:
    """A guess refused for the number's pause is not checked, so it is not counted: past
    the pause the same address still has its 20 checks an hour, less the ones checked."""
    number = "YS202600000002"
    checked = [await _guess(mock_app, "10.7.0.1", number, f"{n:08d}") for n in range(6)]
    assert [a.status_code for a in checked] == [200] * 6  # five, then the first pause's one
    for n in range(30):
        refused = await _guess(mock_app, "10.7.0.1", number, f"{n + 10:08d}")
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["limit"] == "verify-number"
        assert refused.json()["instance"] == VERIFY
    clock.advance(timedelta(minutes=2))
    # 6 checked, 14 left: the 30 refusals cost the address nothing.
    elsewhere = [
        await _guess(mock_app, "10.7.0.1", f"YS2026{n + 100:08d}", "12345678") for n in range(15)
    ]
    assert [a.status_code for a in elsewhere] == [200] * 14 + [429]
    assert elsewhere[-1].json()["limit"] == "verify-ip"


async def test_a_right_password_asked_at_once_from_one_address_is_never_refused(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    """Phones behind one address asking together, as its answer goes stale (every few
    seconds): each is answered, none refused for the address's limit on wrong ones."""
    d = await demo(mock_client, session, keys, clock)
    contract = await signed_contract(mock_client, d, "303", ZHANG)
    first = await _guess(mock_app, "10.6.0.1", contract.number, contract.password)
    assert first.status_code == 200 and first.json()["genuine"] is True
    for _ in range(3):
        clock.advance(timedelta(seconds=30))  # the kept answer is stale now
        answers = await asyncio.gather(
            *(_guess(mock_app, "10.6.0.1", contract.number, contract.password) for _ in range(30))
        )
        assert [a.status_code for a in answers] == [200] * 30
        assert all(a.json() == first.json() for a in answers)
    # Wrong ones from that address are still counted from the first.
    wrong = [
        await _guess(mock_app, "10.6.0.1", f"YS2026{n + 200:08d}", "12345678") for n in range(21)
    ]
    assert [a.status_code for a in wrong] == [200] * 20 + [429]
