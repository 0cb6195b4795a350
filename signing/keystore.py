"""The platform CA's keystore on disk: its layout, its passphrase, and safe writes.

Keystore layout (a directory)::

    keystore.json            manifest: format, organization, passphrase KDF salt/params,
                             issuing generations, platform and seal file names
    root.crt.pem             the trust anchor to publish (verifiers need only this file)
    root.key.pem             encrypted PKCS#8
    issuing-gN.crt.pem       every generation's certificate stays, so old chains rebuild
    issuing-gN.key.pem       only the current generation keeps a key
    platform-gN.crt.pem/.key.pem
    tsa-gN.crt.pem/.key.pem  the time-stamping authority (keystores older than it get one
                             on first use: :meth:`signing.ca.PlatformCA.issue_tsa_certificate`)
    seals/<credit code>.crt.pem/.key.pem

Private keys are PKCS#8 PEM encrypted with ``BestAvailableEncryption``. Its PBKDF2 runs a
fixed 2048 iterations, too few for a human passphrase against an offline attacker, so the
file password is derived first with scrypt (N=2**15, r=8, p=1, salt in the manifest); the
resulting base64 string is what ``openssl pkey`` would need to open a key file.

:func:`new_keystore_files` and :func:`read_keystore` are the disk halves of
:func:`signing.ca.create_keystore` and :func:`signing.ca.load_keystore`; a
:class:`KeystoreFiles` is what a loaded :class:`signing.ca.PlatformCA` writes through. Every
file is written whole to a temporary name and renamed into place, and the manifest is
written after the files it names, so a crash never leaves a manifest naming a missing file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from signing.certificates import CertifiedKey
from signing.files import write_atomically

KEYSTORE_FORMAT = "wangqian.keystore/v1"

_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MANIFEST = "keystore.json"


class KeystoreError(Exception):
    """The keystore cannot be created, read or written."""


class KeystoreExistsError(KeystoreError):
    """create_keystore was pointed at a directory that already holds a keystore."""


class KeystorePassphraseError(KeystoreError):
    """The passphrase does not decrypt the keystore's private keys."""


class _FilePassword:
    """The scrypt-stretched passphrase that encrypts the keystore's PKCS#8 files."""

    def __init__(self, passphrase: bytes | str, salt: bytes, n: int, r: int, p: int) -> None:
        secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if not secret:
            raise KeystorePassphraseError("the keystore passphrase must not be empty")
        derived = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)
        self._password = base64.b64encode(derived)

    def encrypt(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        )

    def decrypt(self, pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, self._password)
        except (ValueError, TypeError) as error:
            raise KeystorePassphraseError(
                f"wrong passphrase: cannot decrypt {path.name} in keystore {path.parent}"
            ) from error
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeystoreError(f"{path} does not hold an EC private key")
        return key


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


class KeystoreFiles:
    """An open keystore directory: its manifest, and the password its key files use.

    Each ``save_*`` method writes the new key and certificate files, then the manifest that
    names them, and only then deletes the files the manifest no longer names.
    """

    def __init__(
        self, directory: Path, manifest: dict[str, Any], file_password: _FilePassword
    ) -> None:
        self.directory = directory
        self._manifest = manifest
        self._file_password = file_password

    @property
    def organization(self) -> str:
        return str(self._manifest["org_name"])

    def save_first_generation(
        self,
        root: CertifiedKey,
        issuing: CertifiedKey,
        platform: CertifiedKey,
        tsa: CertifiedKey,
    ) -> None:
        """Write a new keystore's keys and certificates, then its manifest."""
        self._store("root.key.pem", root)
        self._store("issuing-g1.key.pem", issuing)
        self._store("platform-g1.key.pem", platform)
        self._store("tsa-g1.key.pem", tsa)
        # The manifest goes last: its presence is what marks a complete keystore.
        self._write_manifest()

    def save_seal(self, credit_code: str, seal: CertifiedKey) -> None:
        stem = f"seals/{credit_code}"
        self._store(f"{stem}.key.pem", seal)
        self._manifest["seals"][credit_code] = {
            "certificate": f"{stem}.crt.pem",
            "key": f"{stem}.key.pem",
        }
        self._write_manifest()

    def save_generation(
        self, generation: int, issuing: CertifiedKey, platform: CertifiedKey
    ) -> None:
        """Store issuing CA generation N+1 and its platform key; drop generation N's keys."""
        self._store(f"issuing-g{generation}.key.pem", issuing)
        self._store(f"platform-g{generation}.key.pem", platform)
        retired = self._manifest["issuing"][-1]
        retired_platform_key = self._manifest["platform"]["key"]
        self._manifest["issuing"].append(
            {
                "generation": generation,
                "certificate": f"issuing-g{generation}.crt.pem",
                "key": f"issuing-g{generation}.key.pem",
            }
        )
        self._manifest["platform"] = {
            "certificate": f"platform-g{generation}.crt.pem",
            "key": f"platform-g{generation}.key.pem",
        }
        old_key = retired["key"]
        retired["key"] = None
        self._write_manifest()
        # Only after the manifest no longer points at it: a crash leaves a stray file, not
        # a keystore that names a missing key.
        # The retired platform key goes too: its certificate stays valid for years and a
        # key left on disk could still sign bundles that verify.
        for stale in (old_key, retired_platform_key):
            if stale:
                (self.directory / stale).unlink(missing_ok=True)

    def save_tsa(self, generation: int, tsa: CertifiedKey) -> None:
        name = f"tsa-g{generation}.key.pem"
        self._store(name, tsa)
        retired = self._manifest.get("tsa")
        self._manifest["tsa"] = {"certificate": name.replace(".key.", ".crt."), "key": name}
        self._write_manifest()
        if retired and retired["key"] != name:
            (self.directory / retired["key"]).unlink(missing_ok=True)

    def _store(self, key_name: str, certified: CertifiedKey) -> None:
        key_path = self.directory / key_name
        certificate_path = key_path.with_name(key_path.name.replace(".key.pem", ".crt.pem"))
        write_atomically(key_path, self._file_password.encrypt(certified.private_key), private=True)
        write_atomically(certificate_path, _pem(certified.certificate))

    def _write_manifest(self) -> None:
        data = json.dumps(self._manifest, indent=2, ensure_ascii=False).encode("utf-8")
        write_atomically(self.directory / _MANIFEST, data + b"\n")


def new_keystore_files(
    directory: str | os.PathLike[str], passphrase: bytes | str, org_name: str
) -> KeystoreFiles:
    """An empty keystore directory with the manifest of generation 1, not yet written.

    Refuses a directory that already holds a keystore, and an empty passphrase, before any
    key is made.
    """
    path = Path(directory)
    if (path / _MANIFEST).exists():
        raise KeystoreExistsError(f"{path} already holds a keystore")
    path.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(16)
    file_password = _FilePassword(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    manifest: dict[str, Any] = {
        "format": KEYSTORE_FORMAT,
        "org_name": org_name,
        "kdf": {
            "name": "scrypt",
            "salt": base64.b64encode(salt).decode("ascii"),
            "n": _SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
        },
        "root": {"certificate": "root.crt.pem", "key": "root.key.pem"},
        "issuing": [
            {"generation": 1, "certificate": "issuing-g1.crt.pem", "key": "issuing-g1.key.pem"}
        ],
        "platform": {"certificate": "platform-g1.crt.pem", "key": "platform-g1.key.pem"},
        "tsa": {"certificate": "tsa-g1.crt.pem", "key": "tsa-g1.key.pem"},
        "seals": {},
    }
    return KeystoreFiles(path, manifest, file_password)


@dataclass(frozen=True, slots=True)
class StoredKeystore:
    """What :func:`read_keystore` found: the open files and every current key."""

    files: KeystoreFiles
    root: CertifiedKey
    issuing_certificates: list[x509.Certificate]
    issuing: CertifiedKey
    platform: CertifiedKey
    seals: dict[str, CertifiedKey]
    tsa: CertifiedKey | None


def read_keystore(directory: str | os.PathLike[str], passphrase: bytes | str) -> StoredKeystore:
    """Read a keystore's manifest and certificates and decrypt its current keys."""
    path = Path(directory)
    try:
        manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise KeystoreError(f"{path} holds no keystore ({_MANIFEST} is missing)") from error
    except (OSError, ValueError) as error:
        raise KeystoreError(f"cannot read {path / _MANIFEST}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != KEYSTORE_FORMAT:
        raise KeystoreError(f"{path / _MANIFEST} is not a {KEYSTORE_FORMAT} manifest")
    try:
        kdf = manifest["kdf"]
        file_password = _FilePassword(
            passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"]
        )

        def certified(entry: dict[str, str]) -> CertifiedKey:
            certificate = _read_certificate(path / entry["certificate"])
            key_path = path / entry["key"]
            key = file_password.decrypt(key_path.read_bytes(), key_path)
            if key.public_key() != certificate.public_key():
                raise KeystoreError(f"{key_path} does not match {entry['certificate']}")
            return CertifiedKey(certificate, key)

        # The root key is decrypted first, so a wrong passphrase fails before anything else.
        root = certified(manifest["root"])
        issuing_certificates = [
            _read_certificate(path / entry["certificate"]) for entry in manifest["issuing"]
        ]
        issuing = certified(manifest["issuing"][-1])
        platform = certified(manifest["platform"])
        seals = {code: certified(entry) for code, entry in manifest["seals"].items()}
        tsa = certified(manifest["tsa"]) if manifest.get("tsa") else None
    except KeystoreError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise KeystoreError(f"keystore {path} is damaged: {error!r}") from error
    return StoredKeystore(
        files=KeystoreFiles(path, manifest, file_password),
        root=root,
        issuing_certificates=issuing_certificates,
        issuing=issuing,
        platform=platform,
        seals=seals,
        tsa=tsa,
    )
