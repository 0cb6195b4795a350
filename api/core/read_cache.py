"""A cache of rendered public answers, checked against the data version counters.

Public reads (the building table, the project list, a contract's verify answer) are the
same for everyone and change rarely, but a buyer must never see a unit as available after
its contract was signed. So an answer is kept with the versions of the scopes it was made
from (``api.core.versions``: read *before* the data), and served again only while the
**version board** still shows those versions and the answer is younger than
``fresh_seconds`` (time-based changes, such as an order passing its signing deadline, bump
no counter; and a version published by a process that died is picked up this way too).

The board is where committed versions are published: in-process (one process) or Redis
(several workers or nodes: a commit on one is seen by all before its response is sent).
Answers themselves stay in each process: an answer is a pure function of the data at its
versions, so two processes holding it need not share it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.versions import on_commit, read_versions
from api.db.engine import Database

Pin = Callable[[Iterable[str]], Awaitable[None]]
# Smaller bodies gain less from gzip than its header and the client's work cost them.
GZIP_MIN_BYTES = 1024
Render = Callable[[AsyncSession, Pin], Awaitable[tuple[bytes, bool]]]


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str
    scopes: tuple[str, ...]
    versions: tuple[int, ...]
    stored_at: float
    # Whether it may be served again (a verify answer: only a genuine contract's is).
    kept: bool
    # The body gzipped once, for the phones that accept it (a kept answer of 1 KB or more,
    # fetched with ``gzipped=True``).
    gzipped: bytes | None = None

    @property
    def gzipped_etag(self) -> str:
        """A representation of its own needs a validator of its own (RFC 9110 §8.8.3)."""
        return self.etag[:-1] + '-gz"'


class VersionBoard(Protocol):
    async def current(self, scopes: tuple[str, ...]) -> tuple[int | None, ...]: ...

    async def raise_to(self, versions: Mapping[str, int]) -> None: ...

    async def close(self) -> None: ...


class LocalBoard:
    """One process: a dict per database, raised by every commit in this process (requests,
    the embedded worker, tests) as it happens. With several processes and no Redis, each
    learns of another's commits only when its answers grow older than ``fresh_seconds``."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}

    async def current(self, scopes: tuple[str, ...]) -> tuple[int | None, ...]:
        return tuple(self._versions.get(scope) for scope in scopes)

    def raise_now(self, versions: Mapping[str, int]) -> None:
        for scope, version in versions.items():
            if version > self._versions.get(scope, -1):
                self._versions[scope] = version

    async def raise_to(self, versions: Mapping[str, int]) -> None:
        self.raise_now(versions)

    async def close(self) -> None:
        return None


_LOCAL_BOARDS: dict[str, LocalBoard] = {}


def _heard(database_url: str, versions: dict[str, int]) -> None:
    board = _LOCAL_BOARDS.get(database_url)
    if board is not None:
        board.raise_now(versions)


on_commit(_heard)


# Sets each key to its argument only if that is higher (versions never go back, whichever
# of two publishers arrives last).
_RAISE = """
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[i])
  local current = tonumber(redis.call('GET', key) or '-1')
  if version > current then redis.call('SET', key, version, 'EX', ARGV[#KEYS + 1]) end
end
return 0
"""


class RedisBoard:
    """Several processes or nodes: the versions live in Redis (kept a day after their last
    change; a missing key only costs one fresh render)."""

    def __init__(self, url: str, *, prefix: str = "wangqian:versions:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._prefix = prefix
        self._raise = self._redis.register_script(_RAISE)

    async def current(self, scopes: tuple[str, ...]) -> tuple[int | None, ...]:
        values = await self._redis.mget([self._prefix + scope for scope in scopes])
        return tuple(None if value is None else int(value) for value in values)

    async def raise_to(self, versions: Mapping[str, int]) -> None:
        if not versions:
            return
        keys = [self._prefix + scope for scope in versions]
        await self._raise(keys=keys, args=[*versions.values(), 86_400])

    async def close(self) -> None:
        await self._redis.aclose()


def create_board(redis_url: str, database: Database) -> VersionBoard:
    if redis_url:
        return RedisBoard(redis_url)
    return _LOCAL_BOARDS.setdefault(str(database.engine.url), LocalBoard())


class ReadCache:
    def __init__(
        self,
        database: Database,
        board: VersionBoard,
        clock: Clock,
        *,
        fresh_seconds: float = 5.0,
        max_answers: int = 4096,
    ) -> None:
        self.database = database
        self.board = board
        self.clock = clock
        self.fresh_seconds = fresh_seconds
        self.max_answers = max_answers
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        # One render per key at a time: a launch-day crowd arriving together on a key that
        # just changed waits for one database read instead of making one each.
        self._rendering: dict[Hashable, asyncio.Future[Answer]] = {}

    async def fetch(self, key: Hashable, render: Render, *, gzipped: bool = False) -> Answer:
        """The answer for ``key``: kept, or rendered by ``render(session, pin)``, which
        calls ``pin(scopes)`` before it reads the data the answer depends on, and returns
        the body and whether it may be kept (a negative answer is not). ``gzipped``: keep
        the body compressed too, for the callers that send it so (public reads, not verify)."""
        now = self.clock.now().timestamp()
        kept = await self.kept(key, now)
        if kept is not None:
            return kept
        rendering = self._rendering.get(key)
        if rendering is not None:
            return await asyncio.shield(rendering)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        try:
            answer = await self._render(key, render, now, gzipped=gzipped)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters (if any) raise it themselves
            raise
        else:
            future.set_result(answer)
            return answer
        finally:
            del self._rendering[key]

    async def kept(self, key: Hashable, now: float | None = None) -> Answer | None:
        """The answer kept for ``key`` while still fresh and its versions current, or None
        (nothing is rendered)."""
        kept = self._answers.get(key)
        if kept is None:
            return None
        now = self.clock.now().timestamp() if now is None else now
        if 0 <= now - kept.stored_at < self.fresh_seconds and (
            await self.board.current(kept.scopes) == kept.versions
        ):
            return kept
        return None

    def once_kept(self, key: Hashable) -> bool:
        """Whether an answer is held for ``key``, fresh or not: a verify answer is held only
        while its password was last found right."""
        return key in self._answers

    def _gzipped(self, key: Hashable, body: bytes, etag: str) -> bytes | None:
        """Compressed once per new body: the same body rendered again (its answer grew
        stale, nothing changed) keeps the bytes compressed before."""
        if len(body) < GZIP_MIN_BYTES:
            return None
        before = self._answers.get(key)
        if before is not None and before.etag == etag and before.gzipped is not None:
            return before.gzipped
        return gzip.compress(body, compresslevel=6, mtime=0)

    async def _render(self, key: Hashable, render: Render, now: float, *, gzipped: bool) -> Answer:
        pinned: dict[str, int] = {}

        async with self.database.reader() as session:

            async def pin(scopes: Iterable[str]) -> None:
                pinned.update(await read_versions(session, scopes))

            body, keep = await render(session, pin)
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        kept = keep and bool(pinned)
        answer = Answer(
            body=body,
            etag=etag,
            scopes=tuple(pinned),
            versions=tuple(pinned.values()),
            stored_at=now,
            kept=kept,
            gzipped=self._gzipped(key, body, etag) if kept and gzipped else None,
        )
        if not answer.kept:
            self._answers.pop(key, None)
        else:
            await self.board.raise_to(pinned)
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_answers:
                self._answers.popitem(last=False)
        return answer

    async def publish(self, versions: Mapping[str, int]) -> None:
        """Versions a commit wrote: answers made from older ones are not served again."""
        if versions:
            await self.board.raise_to(versions)

    async def close(self) -> None:
        await self.board.close()


def accepts_gzip(accept_encoding: str | None) -> bool:
    """RFC 9110 §12.5.3: ``gzip`` (or ``*``) listed with a weight above zero."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name.strip().lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against a list of tags, or ``*``."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


__all__: list[Any] = ["Answer", "ReadCache", "accepts_gzip", "create_board", "not_modified"]
