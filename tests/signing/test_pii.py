"""PII protection: HKDF keys, AES-GCM field tokens, blind indexes, masks."""

from __future__ import annotations

import base64

import pytest

from signing.pii import (
    FIELD_ID_NUMBER,
    PURPOSE_OTP_HASH,
    PURPOSE_PII_ENCRYPT,
    PURPOSE_PII_INDEX,
    PiiCipher,
    PiiDecryptionError,
    blind_index,
    derive_key,
    id_number_index,
    mask_account,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_id_number,
)

MASTER = bytes(range(32))
ID = "44010119900101123X"


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher.from_master(MASTER)


def test_derived_keys_are_stable_and_separate_per_purpose() -> None:
    keys = [
        derive_key(MASTER, p) for p in (PURPOSE_PII_ENCRYPT, PURPOSE_PII_INDEX, PURPOSE_OTP_HASH)
    ]
    assert all(len(k) == 32 for k in keys)
    assert len(set(keys)) == 3
    assert derive_key(MASTER, PURPOSE_PII_INDEX) == keys[1]
    assert derive_key(bytes(32), PURPOSE_PII_INDEX) != keys[1]
    assert len(derive_key(MASTER, "x", length=64)) == 64


def test_short_master_or_empty_purpose_is_refused() -> None:
    with pytest.raises(ValueError):
        derive_key(b"short", PURPOSE_PII_INDEX)
    with pytest.raises(ValueError):
        derive_key(MASTER, "")


def test_round_trip(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, field=FIELD_ID_NUMBER)
    assert token.startswith("v1:")
    assert ID not in token
    assert cipher.decrypt(token, field=FIELD_ID_NUMBER) == ID
    assert (
        cipher.decrypt(cipher.encrypt("张三丰", field="citizen.name"), field="citizen.name")
        == "张三丰"
    )


def test_equal_inputs_give_different_tokens(cipher: PiiCipher) -> None:
    tokens = {cipher.encrypt(ID, field=FIELD_ID_NUMBER) for _ in range(10)}
    assert len(tokens) == 10


def test_wrong_associated_data_fails(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, field=FIELD_ID_NUMBER)
    with pytest.raises(PiiDecryptionError):
        cipher.decrypt(token, field="staff.id_number")


def test_wrong_key_or_tampering_fails(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, field=FIELD_ID_NUMBER)
    other = PiiCipher.from_master(bytes(32))
    with pytest.raises(PiiDecryptionError):
        other.decrypt(token, field=FIELD_ID_NUMBER)

    raw = bytearray(base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4)))
    raw[-1] ^= 1
    tampered = "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(PiiDecryptionError):
        cipher.decrypt(tampered, field=FIELD_ID_NUMBER)

    for junk in ("", "v1", "v1:", "v1:!!!!", "v9:" + token[3:], "v1:" + "A" * 10):
        with pytest.raises(PiiDecryptionError):
            cipher.decrypt(junk, field=FIELD_ID_NUMBER)


def test_key_rotation() -> None:
    k1 = derive_key(MASTER, PURPOSE_PII_ENCRYPT)
    k2 = derive_key(bytes(32), PURPOSE_PII_ENCRYPT)
    old = PiiCipher({"v1": k1})
    token = old.encrypt(ID, field=FIELD_ID_NUMBER)

    rotated = PiiCipher({"v1": k1, "v2": k2}, current="v2")
    assert rotated.needs_rotation(token)
    assert rotated.decrypt(token, field=FIELD_ID_NUMBER) == ID
    fresh = rotated.encrypt(ID, field=FIELD_ID_NUMBER)
    assert fresh.startswith("v2:") and not rotated.needs_rotation(fresh)
    with pytest.raises(PiiDecryptionError):
        old.decrypt(fresh, field=FIELD_ID_NUMBER)

    # A v1 token relabelled as v2 does not decrypt: the version is authenticated.
    with pytest.raises(PiiDecryptionError):
        rotated.decrypt("v2:" + token[3:], field=FIELD_ID_NUMBER)


def test_cipher_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        PiiCipher({"v1": bytes(32)}, current="v2")
    with pytest.raises(ValueError):
        PiiCipher({"v1": bytes(16)})
    with pytest.raises(ValueError):
        PiiCipher({"key:1": bytes(32)}, current="key:1")


def test_blind_index_is_stable_normalized_and_keyed() -> None:
    key = derive_key(MASTER, PURPOSE_PII_INDEX)
    index = id_number_index(key, ID)
    assert index == id_number_index(key, "44010119900101123x")
    assert index == id_number_index(key, " 440101 19900101 123X ")
    assert len(index) == 64 and ID not in index
    assert index != id_number_index(derive_key(bytes(32), PURPOSE_PII_INDEX), ID)
    assert index != id_number_index(key, "440101199001011234")
    assert index != blind_index(key, normalize_id_number(ID), field="staff.id_number")
    assert index == blind_index(key, ID, field=FIELD_ID_NUMBER)


def test_masks() -> None:
    assert mask_id_number("440101199001011234") == "4401**********1234"
    assert mask_id_number("44010119900101123x") == "4401**********123X"
    assert mask_id_number("440101900101123") == "4401*******1123"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三丰") == "张**"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("张") == "*"
    assert mask_name("") == ""
    assert mask_account("6222020200112233445") == "6222 **** **** 3445"
    assert mask_account("6222 0202 0011 2233 445") == "6222 **** **** 3445"


def test_masks_of_short_values_hide_almost_everything() -> None:
    assert mask_id_number("1234") == "**34"
    assert mask_phone("12345") == "***45"
    assert mask_account("12345678") == "**** 5678"
    assert mask_account("1234") == "****"
