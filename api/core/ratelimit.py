"""A small fixed-window rate limiter over a Litestar store.

``MemoryStore`` by default (one process); ``RedisStore`` when ``WANGQIAN_REDIS_URL`` is
set, so several workers share the counts. Windows are numbered by the service clock (tests
move it), and the store expires old windows on its own. The read-then-write count is not
atomic across workers: a burst may pass a few requests over the limit, which is fine for
slowing down guessing; the hard rules (code tries, send quotas) live in the database.
"""

from __future__ import annotations

import math

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

    async def peek(self, name: str, key: str, *, limit: int, window_seconds: int) -> None:
        """Refuse with 429 if (name, key) has reached ``limit``, without counting."""
        await self._check(name, key, limit=limit, window_seconds=window_seconds, count=False)

    async def hit(self, name: str, key: str, *, limit: int, window_seconds: int) -> None:
        """Count one request for (name, key); refuse with 429 once ``limit`` is reached."""
        await self._check(name, key, limit=limit, window_seconds=window_seconds, count=True)

    async def _check(
        self, name: str, key: str, *, limit: int, window_seconds: int, count: bool
    ) -> None:
        now = self.clock.now().timestamp()
        window = int(now // window_seconds)
        store_key = f"{name}:{key}:{window}"
        raw = await self.store.get(store_key)
        used = int(raw) if raw else 0
        if used >= limit:
            retry_after = max(1, math.ceil((window + 1) * window_seconds - now))
            raise DomainError(
                "rate_limited",
                "请求过于频繁，请稍后再试。",
                retry_after=retry_after,
                limit=name,
            )
        if count:
            await self.store.set(store_key, str(used + 1), expires_in=window_seconds + 5)
