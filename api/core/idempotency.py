"""``Idempotency-Key`` for POST requests, stored in the database.

The same key with the same body (for the same authenticated caller, method and path)
replays the first answer byte for byte; the same key with another body is refused (422
``idempotency_key_reused``); a second request while the first is still running gets 409
``idempotency_in_progress``. Only answers a handler gave (2xx and 4xx) are stored: a 5xx
releases the key so the client can retry, and an answer marked ``Cache-Control: no-store``
(it carries a secret) is never stored.

The middleware runs after authentication and keys on the principal it found (``caller``),
never on the raw Authorization header: a replay needs the same person logged in, so a
logged-out token replays nothing. Anonymous requests pass through without a record (they
create nothing worth a key, and each record would cost anyone's write lock). Records
past their expiry are purged by ``purge_expired`` (a periodic job of the worker).

A row is inserted *before* the handler runs so that two racing requests cannot both
execute; the unique primary key is the lock, on SQLite and PostgreSQL alike. If the
process dies mid-request the lock expires after ``idempotency_lock_seconds``; the
domain's own unique constraints (one live order per unit, one bank transaction id) stop
a double effect in that window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import Integer, LargeBinary, String, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.problems import ProblemError, send_problem
from api.db.base import Base
from api.db.engine import Database, insert_into

HEADER = b"idempotency-key"
EXEMPT = ("/api/v1/webhooks/",)
MAX_KEY_LENGTH = 200
MAX_BODY_BYTES = 4 * 1024 * 1024

log = logging.getLogger("wangqian.idempotency")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    # sha256 of (caller, method, path, key): the raw key never hits the table.
    scope_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    locked_until: Mapped[datetime]
    expires_at: Mapped[datetime]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


class IdempotencyMiddleware:
    """ASGI middleware; reads the whole body, so it sits inside the size limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Database,
        clock: Clock,
        ttl: int,
        lock_seconds: int,
        caller: Callable[[Scope], str | None],
    ) -> None:
        self.app = app
        self.caller = caller
        self.database = database
        self.clock = clock
        self.ttl = timedelta(seconds=ttl)
        self.lock = timedelta(seconds=lock_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, HEADER) if scope["type"] == "http" else None
        # Webhooks are idempotent by their sender's own event ids, and their callers are
        # anonymous: a key stored by anyone could otherwise block the real sender's event.
        caller = self.caller(scope) if key is not None else None
        if (
            key is None
            or caller is None
            or scope.get("method") != "POST"
            or scope["path"].startswith(EXEMPT)
            or _is_upload(scope)
        ):
            await self.app(scope, receive, send)
            return
        try:
            await self._idempotent(scope, receive, send, key, caller.encode())
        except DomainError as refused:
            await send_problem(send, ProblemError.of(refused), scope)

    async def _idempotent(
        self, scope: Scope, receive: Receive, send: Send, key: bytes, caller: bytes
    ) -> None:
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise DomainError("idempotency_key_invalid", "Idempotency-Key 须为 1 到 200 个字符。")
        body = await _read_body(receive)
        scope_hash = _sha256(caller, scope["method"].encode(), scope["path"].encode(), key)
        request_hash = _sha256(body)
        now = self.clock.now()

        record = await self._claim(scope_hash, request_hash, now)
        if record is not None:
            await self._replay(record, request_hash, now, send)
            return

        captured: dict[str, Any] = {"body": bytearray(), "finished": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # The answer is stored before its last bytes leave: a client that
                    # retries the moment it has the answer finds it to replay, never
                    # ``idempotency_in_progress``.
                    captured["finished"] = True
                    await self._finish(scope_hash, captured)
            await send(message)

        try:
            await self.app(scope, _replay_body(body), capture)
        finally:
            if not captured["finished"]:
                await self._finish(scope_hash, captured)

    async def _claim(
        self, scope_hash: str, request_hash: str, now: datetime
    ) -> IdempotencyRecord | None:
        """Insert the lock row; return the existing record when the key was seen before.
        A new key, nearly every request's, costs one statement (it cost a read first)."""
        row = {
            "scope_hash": scope_hash,
            "request_hash": request_hash,
            "created_at": now,
            "locked_until": now + self.lock,
            "expires_at": now + self.ttl,
        }
        table = IdempotencyRecord.__table__
        async with self.database.writer() as session, session.begin():
            claimed = await session.scalar(
                insert_into(session, table)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["scope_hash"])
                .returning(table.c.scope_hash)
            )
            if claimed is not None:
                return None
            # Seen before: an identical request's (PostgreSQL had this one wait for its
            # commit), or an old one's whose replay time or lock is over, which goes.
            existing = await session.get(IdempotencyRecord, scope_hash)
            if existing is None:  # removed meanwhile (purged, or taken over by another)
                raise _in_progress()
            if existing.expires_at > now and (
                existing.status_code is not None or existing.locked_until > now
            ):
                return existing
            await session.delete(existing)
            await session.flush()
            session.add(IdempotencyRecord(**row))
            try:
                await session.flush()
            except IntegrityError:
                # Lost a race with an identical request (PostgreSQL; SQLite serialises).
                raise _in_progress() from None
        return None

    async def _replay(
        self, record: IdempotencyRecord, request_hash: str, now: datetime, send: Send
    ) -> None:
        if record.request_hash != request_hash:
            raise DomainError(
                "idempotency_key_reused",
                "该 Idempotency-Key 已用于另一个不同的请求，请为新请求使用新的键。",
            )
        if record.status_code is None:
            raise _in_progress()
        headers = [
            (b"content-type", (record.content_type or "application/json").encode()),
            (b"idempotent-replayed", b"true"),
        ]
        await send(
            {"type": "http.response.start", "status": record.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": record.response_body or b""})

    async def _finish(self, scope_hash: str, captured: dict[str, Any]) -> None:
        status = captured.get("status")
        headers = dict(captured.get("headers", []))
        # An answer marked no-store carries a secret (a contract password, a bearer token):
        # it must not sit in this table in clear. A retry with the key runs again instead
        # (and meets "already sealed" or "code used").
        secret = b"no-store" in headers.get(b"cache-control", b"").lower()
        async with self.database.writer() as session, session.begin():
            if status is None or status >= 500 or secret:
                await session.execute(
                    delete(IdempotencyRecord).where(IdempotencyRecord.scope_hash == scope_hash)
                )
                return
            # One statement; it updates nothing when the record is gone (purged).
            await session.execute(
                update(IdempotencyRecord.__table__)
                .where(IdempotencyRecord.scope_hash == scope_hash)
                .values(
                    status_code=status,
                    content_type=headers.get(b"content-type", b"application/json").decode(),
                    response_body=bytes(captured["body"]),
                )
            )


PURGE_EVERY = timedelta(minutes=5)


def purge_expired(database: Database, clock: Clock) -> Callable[[], Awaitable[int]]:
    """A periodic job: delete the records whose replay time is over (and the answers they
    hold), at most every ``PURGE_EVERY``: the worker loop runs every second, and each
    purge is a write transaction."""
    last: list[datetime] = []

    async def purge_idempotency_records() -> int:
        now = clock.now()
        if last and now - last[0] < PURGE_EVERY:
            return 0
        last[:] = [now]
        async with database.writer() as session, session.begin():
            result = await session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    return purge_idempotency_records


def _is_upload(scope: Scope) -> bool:
    """File uploads (multipart) are idempotent by their content where they land, and too
    large to hold here: they pass through."""
    content_type = _header(scope, b"content-type") or b""
    return content_type.lower().startswith(b"multipart/")


def _in_progress() -> DomainError:
    return DomainError(
        "idempotency_in_progress",
        "使用相同 Idempotency-Key 的请求正在处理中，请稍后重试。",
        retry_after=1,
    )


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise DomainError("payload_too_large", "请求内容过大。")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay_body(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
