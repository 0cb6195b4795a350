"""Public routes: no login, no personal data. Building tables and project lists are
served from the read cache (``api.core.read_cache``) with an ``ETag``, and phones and CDNs
may keep them if they ask again (``no-cache``: revalidate, answered 304 while unchanged).
Contract verification is cached on the server alone, and only a genuine contract's answer
(it is asked with a password, so never ``no-store`` aside). The platform's time-stamping
authority (RFC 3161) answers here too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.serialization import encode_json
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.pdfs import ContractPdfs, published_certificates
from api.core.clock import Clock, business_date
from api.core.errors import DomainError
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.problems import handle_domain_error
from api.core.ratelimit import RateLimiter
from api.core.read_cache import Answer, Pin, ReadCache, accepts_gzip, not_modified
from api.core.versions import PROJECTS, REGISTER, building_scope
from api.public import buildings, verification
from api.public.schemas import (
    BuildingTable,
    PublicProjectPage,
    VerifyAnswer,
    VerifyPdfAnswer,
    VerifyQrAnswer,
)
from signing.offline_qr import MAX_TOKEN_CHARS
from signing.tsa import MAX_REQUEST_BYTES, REPLY_MEDIA_TYPE, REQUEST_MEDIA_TYPE

# Wrong contract passwords allowed per IP address, per hour; per contract number, the
# first few in an hour are checked at once, then one check at a time with a growing pause.
VERIFY_FAILURES_PER_NUMBER = 5
VERIFY_FAILURES_PER_IP = 20
VERIFY_BACKOFF_MAX_SECONDS = 60
HOUR = 3600
# verify-pdf checks every signature of a file: bounded per IP address and hour, and in size.
VERIFY_PDF_PER_IP = 60
MAX_PDF_BYTES = 4 * 1024 * 1024
PDF_MEDIA_TYPES = ("application/pdf", "application/octet-stream")
# Anyone may keep a building table or project list, but must ask again before using it
# (a 304 while its ETag holds): a unit's status is never shown stale after a signature.
PUBLIC_CACHE_CONTROL = "public, no-cache"
# The cache key of a verify answer holds the password only as a keyed hash.
VERIFY_CACHE_PURPOSE = "verify-cache"


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _throttled_verify(
    limiter: RateLimiter,
    ip: str,
    number: str,
    check: Callable[[], Awaitable[tuple[Answer, bool]]],
) -> Answer:
    """合同查询 under guessing limits that cannot be raced and cannot lock out the holder.

    Each attempt is counted before the password is checked (atomically, so 30 concurrent
    guesses cannot all find the limit unreached) and given back when it was right. Per IP
    address, 20 wrong an hour. Per contract number there is no lock (numbers are
    sequential: anyone could lock any contract): after 5 wrong in an hour, one check at a
    time, each wrong one doubling the pause before the next (1 s, 2 s ... at most 60 s).
    A right password waits at most that pause, and is never refused for the wrong ones.
    """
    slot = f"verify-number-slot:{number}"
    # Refused on two reads, before anything is counted, while the address is over its limit
    # or the number in its pause: that is most of a guessing flood (it cost five counter
    # operations and their give-backs per refusal). Whoever passes is counted atomically.
    await limiter.peek("verify-ip", ip, limit=VERIFY_FAILURES_PER_IP, window_seconds=HOUR)
    wait = await limiter.held(slot)
    if wait is not None:
        raise _number_paused(wait)
    await limiter.hit("verify-ip", ip, limit=VERIFY_FAILURES_PER_IP, window_seconds=HOUR)
    attempts_key, _ = limiter.window_key("verify-number", number, HOUR)
    attempt = await limiter.incr(attempts_key, 1, expires_in=HOUR + 5)
    if attempt > VERIFY_FAILURES_PER_NUMBER:
        pause = min(2.0 ** (attempt - VERIFY_FAILURES_PER_NUMBER - 1), VERIFY_BACKOFF_MAX_SECONDS)
        wait = await limiter.claim(slot, seconds=pause)
        if wait is not None:
            # Not checked, so not counted: the pause is all it costs.
            await limiter.incr(attempts_key, -1, expires_in=HOUR + 5)
            await limiter.unhit("verify-ip", ip, window_seconds=HOUR)
            raise _number_paused(wait)
    answer, genuine = await check()
    if genuine:
        await limiter.incr(attempts_key, -1, expires_in=HOUR + 5)
        await limiter.unhit("verify-ip", ip, window_seconds=HOUR)
        await limiter.release(slot)
    return answer


def _number_paused(wait: int) -> DomainError:
    return DomainError(
        "rate_limited",
        "该合同查询尝试过于频繁，请稍后再试。",
        retry_after=wait,
        limit="verify-number",
    )


def _body_type(request: Request[Any, Any, Any], allowed: tuple[str, ...], detail: str) -> None:
    """Raw-body routes name what they take; anything else is refused before it is read."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in allowed:
        raise DomainError("unsupported_media_type", detail)


@dataclass(frozen=True)
class PublicReads:
    """What the cached public reads need, as one dependency: Litestar resolves two or more
    dependencies of a handler in a task group of their own, which costs more than a read
    answered from memory (seen in py-spy profiles under wrk)."""

    cache: ReadCache
    clock: Clock
    keys: ServiceKeys
    limiter: RateLimiter


def _revalidated(request: Request[Any, Any, Any], answer: Answer) -> Response[Any]:
    # Straight from the ASGI scope: request.headers builds a parsed copy of them all.
    asked = encodings = None
    for name, value in request.scope["headers"]:
        if name == b"if-none-match":
            asked = value.decode("latin-1")
        elif name == b"accept-encoding":
            encodings = value.decode("latin-1")
    # A 24-unit building table is 7.4 KB, 1.5 KB gzipped: phones on launch day get the
    # bytes compressed once per change of the table, not once per request.
    gzipped = answer.gzipped if accepts_gzip(encodings) else None
    etag = answer.etag if gzipped is None else answer.gzipped_etag
    headers = {"ETag": etag, "Cache-Control": PUBLIC_CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if asked is not None and not_modified(asked, etag):
        return Response(b"", status_code=304, headers=headers)
    if gzipped is not None:
        headers["Content-Encoding"] = "gzip"
        return Response(gzipped, media_type=MediaType.JSON, headers=headers)
    return Response(answer.body, media_type=MediaType.JSON, headers=headers)


class PublicController(Controller):
    path = "/api/v1/public"
    tags = ("public",)

    @get("/projects", summary="楼盘列表 (public project list with unit counts by status)")
    async def list_projects(
        self,
        request: Request[Any, Any, Any],
        public_reads: NamedDependency[PublicReads],
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
        q: Annotated[str | None, Parameter(max_length=100)] = None,
        district: Annotated[str | None, Parameter(max_length=100)] = None,
    ) -> Response[PublicProjectPage]:
        clock = public_reads.clock
        today = business_date(clock.now())

        async def render(db: AsyncSession, pin: Pin) -> tuple[bytes, bool]:
            await pin((PROJECTS, REGISTER))
            page = await buildings.list_projects(
                db,
                today=today,
                now=clock.now(),
                limit=limit,
                offset=offset,
                name_contains=q,
                district=district,
            )
            return encode_json(page), True

        key = ("projects", today, limit, offset, q, district)
        return _revalidated(request, await public_reads.cache.fetch(key, render, gzipped=True))

    @get(
        "/buildings/{building_id:str}/units",
        summary="楼盘表 (a building's units, each with its public status)",
    )
    async def building_units(
        self,
        request: Request[Any, Any, Any],
        public_reads: NamedDependency[PublicReads],
        building_id: FromPath[str],
    ) -> Response[BuildingTable]:
        building = parse_id(building_id, what="楼栋")
        clock = public_reads.clock
        today = business_date(clock.now())

        async def render(db: AsyncSession, pin: Pin) -> tuple[bytes, bool]:
            await pin((building_scope(building), REGISTER))
            table = await buildings.building_table(db, building, today=today, now=clock.now())
            return encode_json(table), True

        key = ("building", building, today)
        return _revalidated(request, await public_reads.cache.fetch(key, render, gzipped=True))

    @get("/verify", summary="合同查询 (number + password)")
    async def verify(
        self,
        request: Request[Any, Any, Any],
        public_reads: NamedDependency[PublicReads],
        number: Annotated[str, Parameter(min_length=1, max_length=32)],
        password: Annotated[str, Parameter(min_length=1, max_length=16)],
    ) -> Response[VerifyAnswer]:
        ip = _ip(request)
        key = number.strip().upper()
        keys = public_reads.keys
        rendered_genuine = False

        async def render(db: AsyncSession, pin: Pin) -> tuple[bytes, bool]:
            nonlocal rendered_genuine
            answer = await verification.verify_contract(
                db, keys, number=number, password=password, pin=pin
            )
            rendered_genuine = answer.genuine
            return encode_json(answer), answer.genuine

        cache_key = ("verify", key, keys.credential_hash(VERIFY_CACHE_PURPOSE, password))

        async def check() -> tuple[Answer, bool]:
            answer = await public_reads.cache.fetch(cache_key, render)
            # Only a genuine answer is ever kept, so one served from the cache is genuine.
            return answer, answer.kept or rendered_genuine

        no_store = {"Cache-Control": "no-store"}
        known = await public_reads.cache.kept(cache_key)
        if known is not None:
            # This very password was found right (only a genuine answer is kept): it is no
            # guess, so there is nothing to count and give back, and no pause to wait.
            return Response(known.body, media_type=MediaType.JSON, headers=no_store)
        if public_reads.cache.once_kept(cache_key):
            # Found right before, and only grown stale: still no guess, so not counted, and
            # rendered once for all asking at once. (Counted, the phones of one address
            # asking together were refused for its limit each time the answer went stale.)
            answer = await public_reads.cache.fetch(cache_key, render)
            return Response(answer.body, media_type=MediaType.JSON, headers=no_store)
        try:
            answer = await _throttled_verify(public_reads.limiter, ip, key, check)
        except DomainError as refusal:
            # Answered here rather than raised through Litestar's exception middleware: a
            # guessing flood is mostly these refusals, and that detour cost an eighth of
            # their throughput under wrk. The same problem+json, from the same function.
            return handle_domain_error(request, refusal)
        return Response(answer.body, media_type=MediaType.JSON, headers=no_store)


@post(
    "/api/v1/public/verify-pdf",
    status_code=200,
    tags=["public"],
    summary="核验合同 PDF (body: the PDF file, application/pdf, at most 4 MiB)",
    request_max_body_size=MAX_PDF_BYTES,
)
async def verify_pdf(
    request: Request[Any, Any, Any],
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    pdfs: NamedDependency[ContractPdfs],
    limiter: NamedDependency[RateLimiter],
) -> Response[VerifyPdfAnswer]:
    _body_type(request, PDF_MEDIA_TYPES, "请以 application/pdf 上传 PDF 文件。")
    await limiter.hit("verify-pdf-ip", _ip(request), limit=VERIFY_PDF_PER_IP, window_seconds=3600)
    answer = await verification.verify_pdf(db, pdfs, await request.body(), now=clock.now())
    return Response(answer, headers={"Cache-Control": "no-store"})


@get("/api/v1/public/verify-qr", tags=["public"], summary="核验合同二维码 (the QR code's text)")
async def verify_qr(
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    pdfs: NamedDependency[ContractPdfs],
    code: Annotated[str, Parameter(min_length=1, max_length=MAX_TOKEN_CHARS + 200)],
) -> Response[VerifyQrAnswer]:
    answer = await verification.verify_qr(db, pdfs, code, now=clock.now())
    return Response(answer, headers={"Cache-Control": "no-store"})


@get(
    "/api/v1/public/certificates",
    media_type="application/x-pem-file",
    tags=["public"],
    summary="平台证书 (PEM: root, issuing CAs, platform signing, TSA) for offline checks",
)
async def certificates(
    clock: NamedDependency[Clock], pdfs: NamedDependency[ContractPdfs]
) -> Response[bytes]:
    pem = await published_certificates(pdfs, clock.now())
    return Response(pem, media_type="application/x-pem-file")


@post(
    "/api/v1/public/tsa",
    status_code=200,
    tags=["public"],
    summary="时间戳服务 (RFC 3161: application/timestamp-query in, timestamp-reply out)",
    request_max_body_size=MAX_REQUEST_BYTES,
)
async def tsa(
    request: Request[Any, Any, Any],
    clock: NamedDependency[Clock],
    pdfs: NamedDependency[ContractPdfs],
) -> Response[bytes]:
    _body_type(request, (REQUEST_MEDIA_TYPE,), "请以 application/timestamp-query 提交请求。")
    now = clock.now()
    authority = await pdfs.authority(now)
    reply = authority.respond(await request.body(), now)
    return Response(reply, media_type=REPLY_MEDIA_TYPE, headers={"Cache-Control": "no-store"})


ROUTES = [PublicController, verify_pdf, verify_qr, certificates, tsa]
