"""A small fixed-window rate limiter over a Litestar store.

``MemoryStore`` by default (one process); ``RedisStore`` when ``WANGQIAN_REDIS_URL`` is
set, so several workers share the counts. Windows are numbered by the service clock (tests
move it), and the store expires old windows on its own. Counting is atomic (Redis INCR;
in memory, a read and write with no await between them): a burst of concurrent requests
cannot all pass a limit that each of them found unreached, as a read-then-write count let
them. The memory store is bounded: strangers choose the keys (any phone, any contract
number, any address), so they must not be able to grow it without end.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from anyio import Lock
from litestar.stores.base import StorageObject, Store
from litestar.stores.memory import MemoryStore

from api.core.clock import Clock
from api.core.errors import DomainError


def create_store(redis_url: str) -> Store:
    if redis_url:
        from litestar.stores.redis import RedisStore

        return RedisStore.with_client(url=redis_url, namespace="wangqian-ratelimit")
    return _MemoryStore()


# Counters and slots one process keeps (a few hundred bytes each): about 30 MB at most.
MEMORY_STORE_ENTRIES = 100_000


class _MemoryStore(MemoryStore):
    """Litestar's MemoryStore, bounded, and counting without a lock.

    Its lock does not stop at the event loop when free (the default passes a
    cancel-shielded checkpoint on every acquire and release: two reads per public verify
    halved its throughput under wrk). Counters (``add``) take no lock at all: nothing
    awaits between reading and writing an entry, so on the one event loop each change is
    atomic. Litestar's store forgets an expired entry only when it is read again; this one
    sweeps the expired when full and, if a flood of fresh keys still fills it, lets the
    oldest quarter go (old windows' counts, not the memory, are what a flood can cost).
    """

    def __init__(self, max_entries: int = MEMORY_STORE_ENTRIES) -> None:
        super().__init__()
        self._lock = Lock(fast_acquire=True)
        self.max_entries = max_entries

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        self.put(key, value.encode() if isinstance(value, str) else value, expires_in)

    def put(self, key: str, data: bytes, expires_in: int | timedelta | None) -> None:
        if key not in self._store and len(self._store) >= self.max_entries:
            self._make_room()
        self._store[key] = StorageObject.new(data=data, expires_in=expires_in)

    def value(self, key: str) -> bytes | None:
        held = self._store.get(key)
        return held.data if held is not None and not held.expired else None

    def add(self, key: str, by: int, *, expires_in: int) -> int:
        held = self.value(key)
        value = (int(held) if held else 0) + by
        self.put(key, str(value).encode(), expires_in)
        return value

    def _make_room(self) -> None:
        self._store = {k: v for k, v in self._store.items() if not v.expired}
        if len(self._store) >= self.max_entries * 9 // 10:
            keep = list(self._store.items())[len(self._store) // 4 :]  # insertion order: age
            self._store = dict(keep)


class RateLimiter:
    def __init__(self, store: Store, clock: Clock) -> None:
        # Which of the two, decided once: a public verify refusal asks the store twice.
        self._redis = _redis_of(store)
        self._memory = store if isinstance(store, _MemoryStore) else None
        if self._redis is None and self._memory is None:
            raise TypeError("the rate limiter counts in create_store's memory store or Redis")
        self.store = store
        self.clock = clock

    async def peek(self, name: str, key: str, *, limit: int, window_seconds: int) -> None:
        """Refuse with 429 if (name, key) has reached ``limit``, without counting."""
        store_key, retry_after = self.window_key(name, key, window_seconds)
        memory = self._memory
        raw = memory.value(store_key) if memory else await self.store.get(store_key)
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
        redis = self._redis
        if redis is not None:
            full = self.store._make_key(store_key)  # type: ignore[attr-defined]
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incrby(full, by)
                pipe.expire(full, expires_in)
                value, _ = await pipe.execute()
            return int(value)
        assert self._memory is not None
        return self._memory.add(store_key, by, expires_in=expires_in)

    async def claim(self, store_key: str, *, seconds: float) -> int | None:
        """Take a slot for ``seconds`` if nobody holds it (atomically): None when taken,
        else the whole seconds until the holder's slot runs out."""
        redis = self._redis
        if redis is not None:
            full = self.store._make_key(store_key)  # type: ignore[attr-defined]
            if await redis.set(full, b"1", nx=True, px=max(1, int(seconds * 1000))):
                return None
            left = await redis.pttl(full)
            return max(1, math.ceil(left / 1000)) if left and left > 0 else 1
        left = self._left_in_memory(store_key)
        if left is not None:
            return left
        assert self._memory is not None
        now = self.clock.now().timestamp()
        self._memory.put(store_key, repr(now + seconds).encode(), math.ceil(seconds) + 5)
        return None

    async def held(self, store_key: str) -> int | None:
        """The whole seconds left on a slot taken by ``claim``, or None when nobody holds it.
        Only a read: whoever goes on past it still has to ``claim`` the slot."""
        redis = self._redis
        if redis is not None:
            left = await redis.pttl(self.store._make_key(store_key))  # type: ignore[attr-defined]
            return max(1, math.ceil(left / 1000)) if left and left > 0 else None
        return self._left_in_memory(store_key)

    def _left_in_memory(self, store_key: str) -> int | None:
        assert self._memory is not None
        now = self.clock.now().timestamp()
        held = self._memory.value(store_key)
        if held is not None and float(held) > now:
            return max(1, math.ceil(float(held) - now))
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
