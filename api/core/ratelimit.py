"""A small fixed-window rate limiter over a Litestar store.

``MemoryStore`` by default (one process); ``RedisStore`` when ``WANGQIAN_REDIS_URL`` is
set, so several workers share the counts. Windows are numbered by the service clock (tests
move it), and the store expires old windows on its own. Counting is atomic (Redis INCR;
in memory, under a lock): a burst of concurrent requests cannot all pass a limit that each
of them found unreached, as a read-then-write count let them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from anyio import Lock
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from api.core.clock import Clock
from api.core.errors import DomainError


def create_store(redis_url: str) -> Store:
    if redis_url:
        from litestar.stores.redis import RedisStore

        return RedisStore.with_client(url=redis_url, namespace="wangqian-ratelimit")
    return _MemoryStore()


class _MemoryStore(MemoryStore):
    """Litestar's MemoryStore, whose lock does not stop at the event loop when it is free.
    Its default lock passes through a cancel-shielded checkpoint on every acquire and
    release; two such reads per public verify halved its throughput and put 100 ms into its
    p99 under wrk (bench/bench_http.py). Nothing awaits while the lock is held, so a free
    lock need not yield."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = Lock(fast_acquire=True)


class RateLimiter:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # The memory store's read-modify-write runs under this lock (one process, one loop).
        self._lock = asyncio.Lock()

    async def peek(self, name: str, key: str, *, limit: int, window_seconds: int) -> None:
        """Refuse with 429 if (name, key) has reached ``limit``, without counting."""
        store_key, retry_after = self.window_key(name, key, window_seconds)
        raw = await self.store.get(store_key)
        if (int(raw) if raw else 0) >= limit:
            raise _limited(name, retry_after)

    async def hit(self, name: str, key: str, *, limit: int, window_seconds: int) -> None:
        """Count one request for (name, key); refuse with 429 once ``limit`` is reached.
        The count comes first and atomically: of N concurrent requests, ``limit`` pass."""
        store_key, retry_after = self.window_key(name, key, window_seconds)
        if await self.incr(store_key, 1, expires_in=window_seconds + 5) > limit:
            raise _limited(name, retry_after)

    async def unhit(self, name: str, key: str, *, window_seconds: int) -> None:
        """Give back a request counted by ``hit`` (one that turned out not to count)."""
        store_key, _ = self.window_key(name, key, window_seconds)
        await self.incr(store_key, -1, expires_in=window_seconds + 5)

    def window_key(self, name: str, key: str, window_seconds: int) -> tuple[str, int]:
        now = self.clock.now().timestamp()
        window = int(now // window_seconds)
        retry_after = max(1, math.ceil((window + 1) * window_seconds - now))
        return f"{name}:{key}:{window}", retry_after

    async def incr(self, store_key: str, by: int, *, expires_in: int) -> int:
        """Add ``by`` to a counter atomically; the new value."""
        redis = _redis_of(self.store)
        if redis is not None:
            full = self.store._make_key(store_key)  # type: ignore[attr-defined]
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incrby(full, by)
                pipe.expire(full, expires_in)
                value, _ = await pipe.execute()
            return int(value)
        async with self._lock:
            raw = await self.store.get(store_key)
            value = (int(raw) if raw else 0) + by
            await self.store.set(store_key, str(value), expires_in=expires_in)
            return value

    async def claim(self, store_key: str, *, seconds: float) -> int | None:
        """Take a slot for ``seconds`` if nobody holds it (atomically): None when taken,
        else the whole seconds until the holder's slot runs out."""
        redis = _redis_of(self.store)
        if redis is not None:
            full = self.store._make_key(store_key)  # type: ignore[attr-defined]
            if await redis.set(full, b"1", nx=True, px=max(1, int(seconds * 1000))):
                return None
            left = await redis.pttl(full)
            return max(1, math.ceil(left / 1000)) if left and left > 0 else 1
        async with self._lock:
            held = await self.store.get(store_key)
            if held is not None:
                until = float(held)
                now = self.clock.now().timestamp()
                if until > now:
                    return max(1, math.ceil(until - now))
            until = self.clock.now().timestamp() + seconds
            await self.store.set(store_key, repr(until), expires_in=math.ceil(seconds) + 5)
            return None

    async def release(self, store_key: str) -> None:
        await self.store.delete(store_key)


def _limited(name: str, retry_after: int) -> DomainError:
    return DomainError(
        "rate_limited", "请求过于频繁，请稍后再试。", retry_after=retry_after, limit=name
    )


def _redis_of(store: Store) -> Any:
    """The client behind a RedisStore (for INCR and SET NX, which the Store API lacks)."""
    from litestar.stores.redis import RedisStore

    return store._redis if isinstance(store, RedisStore) else None
