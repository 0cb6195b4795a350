"""The people an order names, checked the same way for new homes and resale: a name that a
signing certificate can carry, a valid identity document, nobody twice, nobody under 18
(they sign at the service window with their guardians, seed 004), and co-owners' shares
that add up to the whole."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import (
    ContractDocument,
    ContractOrder,
    ContractParty,
    ContractSignature,
)
from api.contracts.terms import BuyerTerms, SealTerms, SellerTerms, terms_of
from api.core.errors import DomainError
from api.core.keys import PARTY_PHONE, ServiceKeys
from api.core.validators import (
    MAX_PERSON_NAME_LENGTH,
    IdType,
    checked_id_document,
    is_minor,
    normalize_phone,
    normalized_person_name,
)
from signing.certificates import signer_id_hash
from signing.pii import mask_id_number, mask_name

PARTY_ID_FIELD = "contract_party.id_number"
SELLER_ACCOUNT_FIELD = "contract_order.seller_account"
ROLE_LABELS = {"buyer": "买受人", "seller": "出卖人"}
MAX_NAME_LENGTH = MAX_PERSON_NAME_LENGTH


@dataclass(frozen=True)
class Person:
    """A party as typed (or read from a title), checked and normalised."""

    role: str  # buyer or seller
    name: str
    id_type: IdType
    id_number: str
    phone: str
    share: str


def same_person(name_on_record: str, verified_name: str | None) -> bool:
    """The name of a party (or an owner) and the name of a verified identity agree."""
    return verified_name is not None and name_on_record.split() == verified_name.split()


def name_mismatch() -> DomainError:
    """A matching document under another name is not the same person (seed 004: 证件号码
    and 姓名 are both checked)."""
    return DomainError(
        "name_mismatch", "您的实名姓名与合同（或产权证）登记的姓名不一致，不能办理。"
    )


def refuse_other_name(name_on_record: str, verified_name: str | None) -> None:
    if not same_person(name_on_record, verified_name):
        raise name_mismatch()


def party_terms(keys: ServiceKeys, person: Person) -> BuyerTerms | SellerTerms:
    """A person as the document names them: the number only masked and as a keyed hash."""
    kind = BuyerTerms if person.role == "buyer" else SellerTerms
    return kind(
        name=person.name,
        id_type=person.id_type.value,
        id_hash=signer_id_hash(person.id_number, keys.signer_id),
        id_number_masked=mask_id_number(person.id_number),
        share=person.share,
    )


def checked_name(raw: str, *, role: str, position: int) -> str:
    name = normalized_person_name(raw)
    if name is None:
        raise DomainError(
            "party_name_invalid",
            f"{ROLE_LABELS[role]}姓名须与证件一致（1 到 {MAX_NAME_LENGTH} 个字，不含数字）。",
            party=position,
        )
    return name


def share_of(raw: str) -> Fraction:
    text = raw.strip()
    try:
        share = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise DomainError(
            "share_invalid", f"共有份额 {raw} 格式不正确，例如 1/2 或 50%。"
        ) from None
    if not 0 < share <= 1:
        raise DomainError("share_invalid", f"共有份额 {raw} 须大于 0 且不超过 1。")
    return share


def checked_buyers(
    buyers: list[schemas.BuyerIn], *, today: date, by_share: bool = True
) -> list[Person]:
    """Valid names and documents, no one twice, no minors, and (when ``by_share``,
    按份共有) shares that add up to 1 when several co-own; joint owners (共同共有) give none."""
    checked: list[Person] = []
    for position, buyer in enumerate(buyers):
        name = checked_name(buyer.name, role="buyer", position=position)
        number = checked_id_document(
            buyer.id_type, buyer.id_number, today=today, whose=f"买受人 {name} 的"
        )
        if any(p.id_type is buyer.id_type and p.id_number == number for p in checked):
            raise DomainError("buyers_duplicate", "同一买受人不能重复填写。", buyer=position)
        refuse_minor("buyer", name, buyer.id_type, number, today=today)
        share = buyer.share.strip() if by_share else ""
        checked.append(
            Person("buyer", name, buyer.id_type, number, normalize_phone(buyer.phone), share)
        )
    if len(checked) > 1 and by_share:
        if any(not p.share for p in checked):
            raise DomainError("share_required", "多位买受人按份共有时须填写各自的共有份额。")
        if sum(share_of(p.share) for p in checked) != 1:
            raise DomainError("shares_invalid", "各买受人的共有份额之和须为 1（100%）。")
    return checked


def refuse_minor(role: str, name: str, id_type: IdType, number: str, *, today: date) -> None:
    if is_minor(id_type, number, today=today):
        raise DomainError(
            "party_minor",
            f"{ROLE_LABELS[role]} {name} 未满 18 周岁，不能在线签约，"
            "请由其父母（监护人）陪同到交易中心窗口办理。",
        )


def set_party_phone(keys: ServiceKeys, party: ContractParty, phone: str) -> None:
    protected = keys.protect_phone(phone, field=PARTY_PHONE)
    party.phone_encrypted, party.phone_masked = protected.encrypted, protected.masked


def party_phone(keys: ServiceKeys, party: ContractParty) -> str | None:
    """Where the party's messages go (None once an expired order was purged)."""
    return keys.phone(party.phone_encrypted, field=PARTY_PHONE) if party.phone_encrypted else None


def add_parties(
    session: AsyncSession, keys: ServiceKeys, order: ContractOrder, people: list[Person]
) -> list[ContractParty]:
    """The order's parties, in the order given; ID numbers kept encrypted, with their
    keyed lookup (per document type) and masked form."""
    parties = []
    for position, person in enumerate(people):
        protected = keys.protect_id_number(
            person.id_number, field=PARTY_ID_FIELD, id_type=person.id_type
        )
        party = ContractParty(
            id=uuid.uuid4(),
            order_id=order.id,
            position=position,
            role=person.role,
            name=person.name,
            id_type=person.id_type,
            id_number_encrypted=protected.encrypted,
            id_number_index=protected.index,
            id_number_masked=protected.masked,
            share=person.share,
        )
        set_party_phone(keys, party, person.phone)
        session.add(party)
        parties.append(party)
    return parties


async def purge_parties(session: AsyncSession, order: ContractOrder, *, now: datetime) -> None:
    """Seed 004: a resale order not signed in time is deleted. What stays is a tombstone
    for the audit trail: the order, its unit and timeline, and each party as a masked name
    and masked document number; names, numbers, phones, the link to their accounts, the
    signatures and the document that named them are gone."""
    for party in await session.scalars(
        select(ContractParty).where(ContractParty.order_id == order.id)
    ):
        party.name = mask_name(party.name)
        party.id_number_encrypted = ""
        party.id_number_index = f"purged:{party.id.hex}"
        party.phone_encrypted = party.phone_masked = ""
        party.citizen_id = None
        party.password_encrypted = None
    await session.execute(delete(ContractSignature).where(ContractSignature.order_id == order.id))
    # The PDF names them too (typeset at the issue, whether anyone signed or not).
    await session.execute(delete(ContractDocument).where(ContractDocument.order_id == order.id))
    terms = terms_of(order)
    masked = [
        p
        if isinstance(p, SealTerms)
        else msgspec.structs.replace(p, name=mask_name(p.name), id_hash="")
        for p in terms.parties
    ]
    resale = terms.resale
    if resale is not None and resale.seller_account is not None:
        resale = msgspec.structs.replace(resale, seller_account=None)
    order.terms_json = msgspec.structs.replace(terms, parties=masked, resale=resale).to_json()
    order.document_json = None
    order.seller_account_encrypted = None
    order.personal_data_purged_at = now
    await session.flush()


def seller_account(keys: ServiceKeys, order: ContractOrder) -> str | None:
    """The sellers' receiving account of a resale, as JSON (bank, name, number), if any."""
    if order.seller_account_encrypted is None:
        return None
    return keys.pii.decrypt(order.seller_account_encrypted, field=SELLER_ACCOUNT_FIELD)
