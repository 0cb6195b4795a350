"""The auth rate limiter over Litestar's stores: memory, and Redis (as deployed with
several workers). Redis runs on 127.0.0.1:6379 on this project's machines (.ci/run starts it)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar.stores.base import Store

from api.core.clock import MovableClock
from api.core.errors import DomainError
from api.core.problems import ProblemError
from api.core.ratelimit import RateLimiter, create_store

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    store = create_store(REDIS_URL if request.param == "redis" else "")
    async with store:  # RedisStore closes its client on exit
        yield store
        await store.delete_all()


async def test_limit_per_window_then_a_new_window(store: Store, clock: MovableClock) -> None:
    limiter = RateLimiter(store, clock)
    key = secrets.token_hex(4)
    for _ in range(3):
        await limiter.hit("login", key, limit=3, window_seconds=60)
    with pytest.raises(DomainError) as refused:
        await limiter.hit("login", key, limit=3, window_seconds=60)
    problem = ProblemError.of(refused.value)
    assert problem.status == 429 and problem.code == "rate_limited"
    assert 1 <= int(problem.headers["Retry-After"]) <= 60
    # Another key is not affected; peeking does not count.
    await limiter.peek("login", key + "x", limit=1, window_seconds=60)
    await limiter.peek("login", key + "x", limit=1, window_seconds=60)
    clock.advance(timedelta(seconds=61))
    await limiter.hit("login", key, limit=3, window_seconds=60)


async def test_concurrent_hits_pass_the_limit_exactly(store: Store, clock: MovableClock) -> None:
    """Review finding 7: counting is atomic on both stores (no peek-then-hit race)."""
    import asyncio

    limiter = RateLimiter(store, clock)
    key = secrets.token_hex(4)

    async def one() -> bool:
        try:
            await limiter.hit("burst", key, limit=20, window_seconds=3600)
        except DomainError:
            return False
        return True

    passed = await asyncio.gather(*(one() for _ in range(30)))
    assert sum(passed) == 20


async def test_a_slot_is_held_by_one_until_it_runs_out(store: Store, clock: MovableClock) -> None:
    import asyncio

    limiter = RateLimiter(store, clock)
    slot = "slot:" + secrets.token_hex(4)
    claims = await asyncio.gather(*(limiter.claim(slot, seconds=30) for _ in range(10)))
    assert claims.count(None) == 1
    assert all(1 <= wait <= 30 for wait in claims if wait is not None)
    await limiter.release(slot)
    assert await limiter.claim(slot, seconds=30) is None
