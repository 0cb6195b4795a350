"""Keys the service derives from its one master secret (see ``Settings.master_secret``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from api.core.validators import IdType
from signing.pii import (
    FIELD_ID_NUMBER,
    PURPOSE_OTP_HASH,
    PURPOSE_PII_INDEX,
    PiiCipher,
    blind_index,
    derive_key,
    id_number_index,
    mask_id_number,
    mask_phone,
)

# Phone numbers are stored as a blind index (``phone_index``) where rows are looked up by
# phone, and encrypted under the name of their column where the number is read back.
FIELD_PHONE = "phone"
CITIZEN_PHONE = "citizens.phone"
STAFF_PHONE = "staff_members.phone"
PARTY_PHONE = "contract_parties.phone"
RECIPIENT_PHONE = "outbox_messages.recipient_phone"


@dataclass(frozen=True)
class ServiceKeys:
    pii: PiiCipher
    pii_index: bytes
    otp: bytes
    credential: bytes
    # Key of the signer ID hash printed in signing certificates and contexts
    # (signing.certificates.signer_id_hash); its own purpose, unlinkable to the PII index.
    signer_id: bytes

    @classmethod
    def from_master(cls, master: bytes) -> ServiceKeys:
        return cls(
            pii=PiiCipher.from_master(master),
            pii_index=derive_key(master, PURPOSE_PII_INDEX),
            otp=derive_key(master, PURPOSE_OTP_HASH),
            credential=derive_key(master, "credential-hash"),
            signer_id=derive_key(master, "signer-id"),
        )

    def protect_id_number(
        self, id_number: str, *, field: str, id_type: IdType = IdType.resident_id
    ) -> ProtectedIdNumber:
        """What we store of an ID number: ciphertext, blind index and the masked form."""
        return ProtectedIdNumber(
            encrypted=self.pii.encrypt(id_number, field=field),
            index=self.id_index(id_number, id_type),
            masked=mask_id_number(id_number),
        )

    def id_index(self, id_number: str, id_type: IdType = IdType.resident_id) -> str:
        """The keyed lookup of a document number. Each document type has its own (a
        passport number may equal another person's permit number); resident IDs keep the
        index they always had."""
        if id_type is IdType.resident_id:
            return id_number_index(self.pii_index, id_number)
        return id_number_index(self.pii_index, id_number, field=f"{FIELD_ID_NUMBER}/{id_type}")

    def phone_index(self, phone: str) -> str:
        """The keyed lookup of a phone number. One index for every table: a phone is the
        login that links a person's rows anyway, and the key is one secret either way."""
        return blind_index(self.pii_index, "".join(phone.split()), field=FIELD_PHONE)

    def protect_phone(self, phone: str, *, field: str) -> ProtectedPhone:
        """What we store of a phone number: its keyed index, its ciphertext in column
        ``field`` (AES-GCM, the column bound) and the masked form."""
        return ProtectedPhone(
            index=self.phone_index(phone),
            encrypted=self.pii.encrypt(phone, field=field),
            masked=mask_phone(phone),
        )

    def phone(self, token: str, *, field: str) -> str:
        """The phone number in a column's ``protect_phone`` ciphertext."""
        return self.pii.decrypt(token, field=field)

    def credential_hash(self, purpose: str, secret: str) -> str:
        """Keyed hash of a short secret printed on paper (a title's check code, a
        contract password): without the key, a stolen database cannot brute-force them."""
        message = purpose.encode() + b"\x00" + secret.strip().upper().encode()
        return hmac.new(self.credential, message, hashlib.sha256).hexdigest()

    def credential_matches(self, purpose: str, secret: str, expected: str) -> bool:
        return hmac.compare_digest(self.credential_hash(purpose, secret), expected)


@dataclass(frozen=True)
class ProtectedPhone:
    index: str
    encrypted: str
    masked: str


@dataclass(frozen=True)
class ProtectedIdNumber:
    encrypted: str
    index: str
    masked: str
