"""Protection of personal data (个人信息): key derivation, field encryption, blind indexes, masks.

* `derive_key` turns the one master secret into independent keys per purpose with
  HKDF-SHA256 (`PURPOSE_PII_ENCRYPT`, `PURPOSE_PII_INDEX`, `PURPOSE_OTP_HASH`, ...).
* `PiiCipher` encrypts a field with AES-256-GCM under a random 96-bit nonce. The field's
  name is associated data, so a ciphertext moved to another column does not decrypt.
  Tokens read ``v1:<base64url(nonce || ciphertext || tag)>``; the version names the key,
  so keys rotate by adding a version and re-encrypting lazily (`needs_rotation`).
* `blind_index` is a keyed HMAC-SHA256 over the normalized value, for equality lookup
  of encrypted columns without decrypting them.
* `mask_*` give the forms shown in responses and logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "FIELD_ID_NUMBER",
    "PURPOSE_OTP_HASH",
    "PURPOSE_PII_ENCRYPT",
    "PURPOSE_PII_INDEX",
    "PiiCipher",
    "PiiDecryptionError",
    "blind_index",
    "derive_key",
    "id_number_index",
    "mask_account",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "normalize_id_number",
]

PURPOSE_PII_ENCRYPT = "pii-encrypt"
PURPOSE_PII_INDEX = "pii-index"
PURPOSE_OTP_HASH = "otp-hash"
FIELD_ID_NUMBER = "citizen.id_number"

_MIN_MASTER_BYTES = 32
_HKDF_SALT = b"wangqian-hkdf-v1"
_NONCE_BYTES = 12
_VERSION_RE = re.compile(r"^v[0-9]+$")


class PiiDecryptionError(ValueError):
    """A token that is malformed, names an unknown key, or fails authentication."""


def derive_key(master: bytes, purpose: str, *, length: int = 32) -> bytes:
    """An independent key for `purpose` from the master secret (HKDF-SHA256).

    The purpose is the HKDF info, so keys for different purposes are unrelated and one
    leaking says nothing about the others or the master.
    """
    if len(master) < _MIN_MASTER_BYTES:
        raise ValueError(f"master secret must be at least {_MIN_MASTER_BYTES} bytes")
    if not purpose:
        raise ValueError("purpose is required")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=_HKDF_SALT,
        info=f"wangqian:{purpose}".encode(),
    )
    return hkdf.derive(master)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PiiCipher:
    """AES-GCM field encryption with versioned keys.

    `keys` maps a version ("v1", "v2", ...) to a 32-byte key; new tokens use `current`.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str = "v1") -> None:
        if current not in keys:
            raise ValueError(f"current key version {current!r} is not in keys")
        for version, key in keys.items():
            if not _VERSION_RE.match(version):
                raise ValueError(f"key version must look like 'v1', got {version!r}")
            if len(key) != 32:
                raise ValueError("PII keys must be 32 bytes (AES-256)")
        self._aead = {version: AESGCM(key) for version, key in keys.items()}
        self.current = current

    @classmethod
    def from_master(cls, master: bytes, version: str = "v1") -> PiiCipher:
        """A single-version cipher keyed by `derive_key(master, PURPOSE_PII_ENCRYPT)`."""
        return cls({version: derive_key(master, PURPOSE_PII_ENCRYPT)}, current=version)

    @staticmethod
    def _associated_data(version: str, field: str) -> bytes:
        # The version is bound too, so a token cannot be relabelled to another key.
        return f"{version}|{field}".encode()

    def encrypt(self, value: str, *, field: str) -> str:
        """A token for `value` in column `field` (e.g. FIELD_ID_NUMBER)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(
            nonce, value.encode("utf-8"), self._associated_data(self.current, field)
        )
        return f"{self.current}:{_b64url_encode(nonce + sealed)}"

    def decrypt(self, token: str, *, field: str) -> str:
        """The value in `token`; raises PiiDecryptionError if it is not genuine for `field`."""
        version, sep, body = token.partition(":")
        if not sep or version not in self._aead:
            raise PiiDecryptionError("unknown token version")
        try:
            raw = _b64url_decode(body)
        except (binascii.Error, ValueError) as exc:
            raise PiiDecryptionError("malformed token") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise PiiDecryptionError("malformed token")
        try:
            plain = self._aead[version].decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._associated_data(version, field)
            )
        except InvalidTag as exc:
            raise PiiDecryptionError("token does not authenticate for this field") from exc
        return plain.decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """True if `token` was made with a key other than the current one."""
        return token.partition(":")[0] != self.current


def normalize_id_number(id_number: str) -> str:
    """An identity document number in canonical form: full-width characters as their
    ASCII forms (NFKC: "１２３" is 123), no spaces, upper case (the X of a resident ID)."""
    return "".join(unicodedata.normalize("NFKC", id_number).split()).upper()


def blind_index(key: bytes, normalized_value: str, *, field: str) -> str:
    """Hex HMAC-SHA256 of an already normalized value, separated per field.

    The field is in the MAC input so equal values in different columns do not link.
    """
    message = field.encode("utf-8") + b"\x00" + normalized_value.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def id_number_index(key: bytes, id_number: str, *, field: str = FIELD_ID_NUMBER) -> str:
    """Blind index of an ID number, normalized first (so 'x' and 'X' match)."""
    return blind_index(key, normalize_id_number(id_number), field=field)


def _mask_middle(value: str, keep_head: int, keep_tail: int) -> str:
    if len(value) <= keep_head + keep_tail:
        # Too short to show both ends safely: show only the last two characters.
        tail = value[-2:] if len(value) > 2 else ""
        return "*" * (len(value) - len(tail)) + tail
    middle = len(value) - keep_head - keep_tail
    return value[:keep_head] + "*" * middle + value[len(value) - keep_tail :]


def mask_id_number(id_number: str) -> str:
    """First 4 and last 4 kept: '440101199001011234' -> '4401**********1234'."""
    return _mask_middle(normalize_id_number(id_number), 4, 4)


def mask_phone(phone: str) -> str:
    """First 3 and last 4 kept: '13812345678' -> '138****5678'."""
    return _mask_middle("".join(phone.split()), 3, 4)


def mask_name(name: str) -> str:
    """Only the first character kept (the family name for most names): '张三丰' -> '张**'.

    A one-character name becomes '*'.
    """
    name = name.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)


def mask_account(account: str) -> str:
    """Bank account: first 4 and last 4 in groups, length hidden.

    '6222020200112233445' -> '6222 **** **** 3445'.
    """
    digits = "".join(account.split())
    if len(digits) <= 8:
        return "**** " + digits[-4:] if len(digits) > 4 else "****"
    return f"{digits[:4]} **** **** {digits[-4:]}"
