"""Signing acts, the same for a contract and for its termination agreement: a person's SMS
code is checked against what it was bound to, then the platform CA issues a per-signing
certificate and the signature is made over the document hash and its context (the key is
discarded inside ``signing.signatures``); the company seal signs with the company's seal
certificate after the seal keeper's code (and TOTP once enrolled)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.keystore import Keystore
from api.contracts.models import ContractParty
from api.contracts.people import PARTY_ID_FIELD
from api.contracts.queries import client_ip
from api.contracts.terms import DeveloperTerms
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise
from api.identity.codes import verify_code
from api.identity.staff import StaffIdentity, check_staff_totp
from api.identity.verification import CitizenIdentity
from signing.canonical import format_utc
from signing.certificates import CertificateIssueError, Company, Signer, signer_id_hash
from signing.signatures import SignatureRecord, seal_sign, sign_once
from signing.signing_context import SignerRole, SigningContext

SIGN_PURPOSE = "sign"
SEAL_PURPOSE = "seal"


@dataclass(frozen=True)
class Client:
    """Where a signing request came from, as its context records it."""

    ip: str
    user_agent: str


@dataclass(frozen=True)
class SigningCode:
    """The SMS code a signer typed, and what it was sent for."""

    challenge_id: str
    code: str
    subject: str  # what the code was bound to: an order or a cancellation, a party, a hash


async def checked_code(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    phone: str,
    typed: SigningCode,
    purpose: str,
    now: datetime,
) -> str:
    """The challenge id of a right code; a wrong try is kept (committed), then refused."""
    verified = await verify_code(
        session, keys, phone=phone, code=typed.code, now=now, purpose=purpose, subject=typed.subject
    )
    if verified.challenge_id != typed.challenge_id:
        await commit_and_raise(
            session, DomainError("challenge_mismatch", "验证码与签署请求不匹配，请重新获取。")
        )
    return verified.challenge_id


def require_recent_face(citizen: CitizenIdentity, *, now: datetime, max_age: timedelta) -> None:
    """A signature needs a face check passed within the last few minutes (seed 004: 微警认证
    at signing; seed 003: 人像比对 at each submission)."""
    checked = citizen.face_verified_at
    if checked is None or now - checked > max_age:
        minutes = int(max_age.total_seconds() // 60)
        raise DomainError(
            "face_check_stale",
            f"签署前须在 {minutes} 分钟内完成人脸核身，请重新进行人脸核身。",
            max_age_minutes=minutes,
        )


def consent_detail(citizen: CitizenIdentity) -> dict[str, str | None]:
    """The signer's separate consent to the personal-information notice, for the timeline
    event of the signing act (the evidence bundle carries the timeline's hash chain)."""
    return {
        "pi_consent_version": citizen.pi_consent_version,
        "pi_consent_at": format_utc(citizen.pi_consent_at) if citizen.pi_consent_at else None,
    }


def person_act(
    keys: ServiceKeys,
    party: ContractParty,
    *,
    document_hash: str,
    order_id: str,
    challenge_id: str,
    client: Client,
    now: datetime,
) -> tuple[Signer, SigningContext]:
    """Who signs (the per-signing certificate names them) and the context they sign."""
    id_number = keys.pii.decrypt(party.id_number_encrypted, field=PARTY_ID_FIELD)
    id_hash = signer_id_hash(id_number, keys.signer_id)
    role = SignerRole(party.role)
    context = SigningContext(
        document_hash=document_hash,
        order_id=order_id,
        role=role,
        signer_id_hash=id_hash,
        signing_time=now,
        challenge_id=challenge_id,
        client_ip=client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    return Signer(party.name, id_hash, role), context


async def person_signs(
    keys: ServiceKeys,
    keystore: Keystore,
    party: ContractParty,
    *,
    document_hash: str,
    order_id: str,
    challenge_id: str,
    client: Client,
    now: datetime,
) -> SignatureRecord:
    """A party's signature through a per-signing certificate that names them, without a
    PDF revision (a termination agreement; a contract's act goes through ``pdfs``)."""
    signer, context = person_act(
        keys,
        party,
        document_hash=document_hash,
        order_id=order_id,
        challenge_id=challenge_id,
        client=client,
        now=now,
    )
    return sign_once(await keystore.ca(now), signer, context, now)


def seal_company(name: str, credit_code: str) -> Company:
    """The subject of the company's seal certificate; an order checks it at creation, so
    that no order is made that its developer could never seal."""
    try:
        return Company(name, credit_code)
    except CertificateIssueError:
        raise DomainError(
            "seal_unavailable", "企业名称或统一社会信用代码无法用于印章证书，请联系平台。"
        ) from None


async def company_seals(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
    staff: StaffIdentity,
    developer: DeveloperTerms,
    *,
    document_hash: str,
    order_id: str,
    typed: SigningCode,
    totp_code: str | None,
    client: Client,
    now: datetime,
) -> tuple[SignatureRecord, str]:
    """The seal keeper proves it is them (TOTP when enrolled, then the SMS code); the
    company seal signs. Returns the signature and the challenge id it answered."""
    await check_staff_totp(session, keys, staff.id, totp_code, now)
    challenge_id = await checked_code(
        session, keys, phone=staff.phone(keys), typed=typed, purpose=SEAL_PURPOSE, now=now
    )
    company = seal_company(developer.name, developer.credit_code)
    ca = await keystore.ca_with_seal(company, now)
    context = SigningContext(
        document_hash=document_hash,
        order_id=order_id,
        role=SignerRole.SEAL,
        signer_id_hash=signer_id_hash(developer.credit_code, keys.signer_id),
        signing_time=now,
        challenge_id=challenge_id,
        client_ip=client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    return seal_sign(ca, developer.credit_code, context, now), challenge_id
