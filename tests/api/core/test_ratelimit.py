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


async def test_held_reads_a_slot_without_taking_it(store: Store, clock: MovableClock) -> None:
    limiter = RateLimiter(store, clock)
    slot = "slot:" + secrets.token_hex(4)
    assert await limiter.held(slot) is None
    assert await limiter.held(slot) is None  # reading twice took nothing
    assert await limiter.claim(slot, seconds=30) is None
    held = await limiter.held(slot)
    assert held is not None and 1 <= held <= 30
    await limiter.release(slot)
    assert await limiter.held(slot) is None


async def test_peek_refuses_at_the_limit_without_counting(store: Store, clock: MovableClock) -> None:
    limiter = RateLimiter(store, clock)
    key = secrets.token_hex(4)
    await limiter.hit("pin", key, limit=2, window_seconds=60)
    await limiter.peek("pin", key, limit=2, window_seconds=60)
    await limiter.hit("pin", key, limit=2, window_seconds=60)
    with pytest.raises(DomainError) as refused:
        await limiter.peek("pin", key, limit=2, window_seconds=60)
    assert refused.value.extra["limit"] == "pin"


async def test_the_memory_store_stays_bounded_under_a_flood_of_keys(clock: MovableClock) -> None:
    """Strangers choose the keys (any phone, contract number or address): a flood of new
    ones must not grow the store without end, and recent counts survive it."""
    from api.core.ratelimit import _MemoryStore

    store = _MemoryStore(max_entries=100)
    limiter = RateLimiter(store, clock)
    for n in range(1_000):
        await limiter.hit("flood", f"key-{n}", limit=5, window_seconds=3600)
        assert len(store._store) <= 100
    # The newest keys still hold their counts (the oldest quarter went when it was full).
    for _ in range(4):
        await limiter.hit("flood", "key-999", limit=5, window_seconds=3600)
    with pytest.raises(DomainError):
        await limiter.hit("flood", "key-999", limit=5, window_seconds=3600)


async def test_expired_entries_are_swept_before_any_live_one_goes(clock: MovableClock) -> None:
    from api.core.ratelimit import _MemoryStore

    store = _MemoryStore(max_entries=10)
    for n in range(9):
        store.put(f"old-{n}", b"1", -1)  # already expired
    store.put("live", b"3", 60)
    store.put("new", b"1", 60)  # full: the expired ones are swept, the live one stays
    assert sorted(store._store) == ["live", "new"]
    assert store.value("live") == b"3"


def test_the_limiter_counts_only_in_its_own_stores(clock: MovableClock) -> None:
    from litestar.stores.memory import MemoryStore

    with pytest.raises(TypeError):
        RateLimiter(MemoryStore(), clock)
