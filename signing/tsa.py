"""Trusted time: RFC 3161 time-stamp tokens.

Three parts:

- :class:`TimeStampAuthority` — the platform's own time-stamping authority (TSA). It
  answers DER ``TimeStampReq`` bytes with DER ``TimeStampResp`` bytes, signing with its
  own certificate under the platform root (extended key usage id-kp-timeStamping,
  critical). The API serves it at a route of its own, so other tools (``openssl ts``,
  Acrobat, pyHanko) can stamp with it too, and uses it in process when no outside TSA is
  configured.
- :class:`TransportTimeStamper` — pyHanko's client side (request with a nonce, answer
  checked for status and nonce) over a transport the caller provides: an outside TSA by
  HTTP (the API decides which, this library knows no HTTP) or :meth:`TimeStampAuthority.
  transport` in process.
- :func:`verify_token` — checks a token against the data it stamps and the platform
  root, with pyHanko's validator, as a list of :class:`~signing.checks.Check`.

The authority is written here because no maintained Python library is one: pyHanko's
only responder is a test double (``DummyTimeStamper``: RSA keys only, any request
accepted), and asn1crypto has the structures but no responder. The encoding work is
asn1crypto's; this module decides what a request may ask and what a token says.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

from signing.ca import PlatformCA
from signing.canonical import format_utc, utc_seconds
from signing.certificates import OID_ARC
from signing.checks import Check

# The policy under which our TSA stamps (RFC 3161 section 2.4.2 "policy").
POLICY_OID = f"{OID_ARC}.3"
# The digests a request may name, with their lengths (RFC 3161 section 2.4.1).
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
# A request is a few hundred bytes; anything far larger is not one.
MAX_REQUEST_BYTES = 8 * 1024
# id-ct-TSTInfo, spelled as an OID: asn1crypto's name for it is registered late (by its
# tsp module) and is missing from a name table built before that import.
_ID_CT_TST_INFO = "1.2.840.113549.1.9.16.1.4"
REQUEST_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"

Transport = Callable[[bytes], Awaitable[bytes]]

_T = TypeVar("_T")


class TimestampError(ValueError):
    """No token could be had: the authority refused, or its answer is not usable."""


@functools.lru_cache(maxsize=8)
def _signing_certificate(certificate_der: bytes) -> bytes:
    """The signing-certificate attribute (RFC 5035: the TSA certificate's SHA-256) in DER,
    built once per certificate. The same in every token, and asn1crypto took 4 to 5 ms of
    CPU to build it (it encodes the enclosing values again at each field set), two thirds
    of a token: on launch day each signing act asks for two, on the request loop."""
    return cms.CMSAttribute(
        {
            "type": "signing_certificate_v2",
            "values": [{"certs": [{"cert_hash": hashlib.sha256(certificate_der).digest()}]}],
        }
    ).dump()


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


class _Rejection(core.Sequence):
    """A TimeStampResp without a token: asn1crypto's own declares the token mandatory,
    though RFC 3161 leaves it out of every answer that is not granted."""

    _fields = [("status", tsp.PKIStatusInfo)]  # noqa: RUF012 - asn1crypto's declaration


def _rejection(fail_info: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail_info}),
        }
    )
    return _Rejection({"status": status}).dump()


class _RefusedError(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def _parse_request(request_der: bytes) -> tsp.TimeStampReq:
    if len(request_der) > MAX_REQUEST_BYTES:
        raise _RefusedError("bad_data_format", "request too large")
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        version = request["version"].native
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        digest = imprint["hashed_message"].native
        policy = request["req_policy"].native
        extensions = request["extensions"].native
        request["nonce"].native  # noqa: B018 - parse it now, not while answering
    except Exception as error:  # asn1crypto raises many kinds on malformed input
        raise _RefusedError("bad_data_format", f"malformed request: {error}") from None
    if version != "v1":
        raise _RefusedError("bad_request", "only version 1 requests are understood")
    if algorithm not in _DIGEST_SIZES:
        raise _RefusedError("bad_alg", f"unsupported hash algorithm {algorithm}")
    if not isinstance(digest, bytes) or len(digest) != _DIGEST_SIZES[algorithm]:
        raise _RefusedError("bad_data_format", "the hashed message has the wrong length")
    if policy is not None and policy != POLICY_OID:
        raise _RefusedError("unaccepted_policy", f"only policy {POLICY_OID} is offered")
    if extensions:
        raise _RefusedError("unaccepted_extension", "no request extensions are supported")
    return request


@dataclass(frozen=True)
class TimeStampAuthority:
    """The platform's TSA: its certificate, the issuing CA above it, and its key."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    _key: ec.EllipticCurvePrivateKey

    @classmethod
    def of(cls, ca: PlatformCA) -> TimeStampAuthority:
        tsa = ca._tsa_key()
        if tsa is None:
            raise TimestampError("this keystore has no time-stamping certificate yet")
        return cls(tsa.certificate, ca.issuer_of(tsa.certificate), tsa.private_key)

    def respond(self, request_der: bytes, now: datetime) -> bytes:
        """A DER ``TimeStampResp`` for a DER ``TimeStampReq``: granted with a token, or
        a rejection naming the failure (RFC 3161 section 2.4.2). Never raises on input."""
        try:
            request = _parse_request(request_der)
        except _RefusedError as refused:
            return _rejection(refused.fail_info, refused.text)
        moment = utc_seconds(now)
        if not (
            self.certificate.not_valid_before_utc <= moment <= self.certificate.not_valid_after_utc
        ):
            return _rejection("system_failure", "the time-stamping certificate is not valid")
        token = self._token(request, moment)
        status = tsp.PKIStatusInfo({"status": "granted"})
        return tsp.TimeStampResp({"status": status, "time_stamp_token": token}).dump()

    def _token(self, request: tsp.TimeStampReq, moment: datetime) -> cms.ContentInfo:
        me = _asn1_certificate(self.certificate)
        info: dict[str, Any] = {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": request["message_imprint"],
            # Unique per token: 128 random bits, positive (RFC 3161 allows up to 160).
            "serial_number": secrets.randbits(127) | 1 << 127,
            "gen_time": moment,
            "accuracy": {"seconds": 1},
            "tsa": asn1_x509.GeneralName({"directory_name": me.subject}),
        }
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"]
        content = tsp.TSTInfo(info).dump()
        attributes = cms.CMSAttributes(
            [
                {"type": "content_type", "values": [_ID_CT_TST_INFO]},
                {"type": "signing_time", "values": [cms.Time({"utc_time": moment})]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                cms.CMSAttribute.load(_signing_certificate(me.dump())),
            ]
        )
        signature = self._key.sign(attributes.dump(), ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": me.issuer,
                            "serial_number": me.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": attributes,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }
        )
        signed: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {
                "content_type": _ID_CT_TST_INFO,
                "content": cms.ParsableOctetString(content),
            },
            "signer_infos": [signer],
        }
        if request["cert_req"].native:
            signed["certificates"] = [me, _asn1_certificate(self.issuer)]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed)})

    def transport(self, clock: Callable[[], datetime]) -> Transport:
        """In-process transport for :class:`TransportTimeStamper`, stamped at ``clock()``."""

        async def stamp(request_der: bytes) -> bytes:
            return self.respond(request_der, clock())

        return stamp


class TransportTimeStamper(TimeStamper):
    """pyHanko's RFC 3161 client over a transport (DER request in, DER answer out)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(include_nonce=True)
        self._transport = transport

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        answer = await self._transport(req.dump())
        status, fail_info, text = response_status(answer)
        if status != "granted":
            raise TimestampError(f"the time-stamping authority refused: {text} {sorted(fail_info)}")
        return tsp.TimeStampResp.load(answer, strict=True)

    async def stamp(self, data: bytes) -> bytes:
        """A token (DER ContentInfo) over SHA-256 of ``data``."""
        try:
            token = await self.async_timestamp(hashlib.sha256(data).digest(), "sha256")
        except TimestampError:
            raise
        except Exception as error:  # pyHanko's TimestampRequestError, I/O errors
            raise TimestampError(str(error)) from None
        return bytes(token.dump())


def response_status(answer: bytes) -> tuple[str, set[str], str]:
    """(status, failure names, status text) of a DER TimeStampResp, also of a rejection
    (which asn1crypto's TimeStampResp cannot load: it wants a token in every answer)."""
    try:
        status = _Rejection.load(answer)["status"]
        return (
            str(status["status"].native),
            set(status["fail_info"].native or ()),
            "; ".join(status["status_string"].native or ()),
        )
    except Exception as error:  # not a TimeStampResp at all
        raise TimestampError(f"the time-stamping authority's answer: {error}") from None


# One thread per process for pyHanko's signing, running an event loop of its own: its
# work is pure Python, so more threads would only take the interpreter lock from the
# request loop more often, while one loop lets signings overlap their time-stamp waits (a
# remote TSA answers in tens of milliseconds). Made on first use, and again in a forked
# child (which inherits no threads).
_signer: tuple[int, asyncio.AbstractEventLoop] | None = None
_signer_lock = threading.Lock()


def _signer_loop() -> asyncio.AbstractEventLoop:
    global _signer
    with _signer_lock:
        if _signer is None or _signer[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="pdf-signer", daemon=True).start()
            _signer = (os.getpid(), loop)
        return _signer[1]


async def off_the_loop(
    work: Callable[[TimeStamper | None], Coroutine[Any, Any, _T]],
    timestamper: TimeStamper | None,
) -> _T:
    """``await work(timestamper)`` on the PDF signing thread's event loop.

    Why: making a PDF revision is pure-Python work in pyHanko (tens to hundreds of
    milliseconds for a contract); run on the request loop it held up every other request
    of the process (launch day: order creation's p99 went with the buyers' signatures). On
    a thread of its own the request loop keeps its turn at the interpreter lock. The
    time-stamp requests go back to the calling loop, where the transport lives (an HTTP
    client is bound to its loop)."""
    caller = asyncio.get_running_loop()
    bridged = None if timestamper is None else _LoopBridge(timestamper, caller)
    done = asyncio.run_coroutine_threadsafe(work(bridged), _signer_loop())
    return await asyncio.wrap_future(done)


class _LoopBridge(TimeStamper):
    """A time-stamper in the signing thread whose requests run on the caller's loop (its
    dummy answers, cached there, are shared by every signing)."""

    def __init__(self, inner: TimeStamper, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        return await self._there(self._inner.async_timestamp(message_digest, md_algorithm))

    async def async_dummy_response(self, md_algorithm: str) -> cms.ContentInfo:
        return await self._there(self._inner.async_dummy_response(md_algorithm))

    async def _there(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))


def run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a pyHanko coroutine from synchronous code, also when an event loop is already
    running in this thread (the API calling a synchronous verifier): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[_T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as error:  # handed back to the caller's thread
            failure.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


@dataclass(frozen=True, slots=True)
class TokenVerification:
    """What a time-stamp token says and whether it holds."""

    checks: tuple[Check, ...]
    time: datetime | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def token_time(token_der: bytes) -> datetime:
    """The genTime of a token, unverified (for display; :func:`verify_token` checks)."""
    info = cms.ContentInfo.load(token_der)["content"]["encap_content_info"]["content"]
    return utc_seconds(info.parsed["gen_time"].native)


def verify_token(
    token_der: bytes,
    data: bytes,
    root: x509.Certificate,
    *,
    extra_certificates: Sequence[x509.Certificate] = (),
) -> TokenVerification:
    """Check a token over ``data``: its imprint, the TSA's signature, the chain to
    ``root`` and the time-stamping key usage, at the token's own time. Never raises."""
    try:
        signed = cms.ContentInfo.load(token_der, strict=True)["content"]
        moment = token_time(token_der)
    except Exception as error:  # anything unreadable is a failed check, not a crash
        return TokenVerification((Check("token", False, f"unreadable time-stamp token: {error}"),))
    context = ValidationContext(
        trust_roots=[_asn1_certificate(root)],
        other_certs=[_asn1_certificate(c) for c in extra_certificates],
        allow_fetching=False,
        moment=moment,
        revocation_mode="soft-fail",
    )

    def imprint(algorithm: str) -> bytes:
        return hashlib.new(algorithm, data).digest()

    try:
        status = TimestampSignatureStatus(
            **run_sync(validate_tst_signed_data(signed, context, imprint))
        )
    except Exception as error:  # pyHanko raises on malformed tokens
        return TokenVerification((Check("token", False, f"time-stamp token: {error}"),), moment)
    when = format_utc(moment)
    checks = [
        Check(
            "token.imprint",
            status.intact,
            "the token stamps this data" if status.intact else "the token stamps other data",
        ),
        Check(
            "token.signature",
            status.valid,
            "the authority's signature holds" if status.valid else "the signature is broken",
        ),
        Check(
            "token.trusted",
            status.trusted,
            f"stamped at {when} by a time-stamping authority under the root"
            if status.trusted
            else "the time-stamping authority does not chain to the trusted root",
        ),
    ]
    return TokenVerification(tuple(checks), moment)
