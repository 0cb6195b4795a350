"""The platform CA in the running app: created on first use into ``DATA_DIR/keystore``,
loaded once per app, and the companies' seal certificates issued on their first seal.

Creation and seal issuance hold an exclusive file lock (``keystore.lock``) so that two
processes starting together, or sealing for the same company together, cannot write two
different keystores or seal keys; a process that finds the work done reloads from disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from api.settings import Settings
from signing import ca as ca_module
from signing.ca import PlatformCA
from signing.certificates import Company

ORG_NAME = "Wangqian Platform"
# Certificates made here start this long before the request that made them: a concurrent
# request that read its clock a moment earlier must still find the CA (or the seal) valid
# at its signing time, and verifiers' clocks may be a little behind.
BACKDATE = timedelta(minutes=10)


def keystore_passphrase(settings: Settings) -> str:
    if settings.keystore_passphrase:
        return settings.keystore_passphrase
    # Derived from the master secret (see Settings.keystore_passphrase).
    return hashlib.sha256(
        b"wangqian/keystore-passphrase\x00" + settings.master_secret()
    ).hexdigest()


class Keystore:
    """Lazily opened platform CA; thread-safe, one per app."""

    def __init__(self, directory: Path, passphrase: str) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._ca: PlatformCA | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keystore:
        return cls(settings.data_dir / "keystore", keystore_passphrase(settings))

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory.parent / "keystore.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _open(self, now: datetime) -> PlatformCA:
        with self._lock:
            if self._ca is None:
                with self._file_lock():
                    if (self.directory / "keystore.json").exists():
                        self._ca = ca_module.load_keystore(self.directory, self._passphrase)
                    else:
                        self._ca = ca_module.create_keystore(
                            self.directory, self._passphrase, now - BACKDATE, ORG_NAME
                        )
            return self._ca

    def _ensure(
        self,
        now: datetime,
        present: Callable[[PlatformCA], bool],
        issue: Callable[[PlatformCA], object],
    ) -> PlatformCA:
        """The CA with something issued once for all processes (a seal, the TSA key)."""
        ca = self._open(now)
        if present(ca):
            return ca
        with self._lock, self._file_lock():
            # Another process may have issued it meanwhile: look at the disk first.
            fresh = ca_module.load_keystore(self.directory, self._passphrase)
            if not present(fresh):
                issue(fresh)
            self._ca = fresh
            return fresh

    def _with_seal(self, company: Company, now: datetime) -> PlatformCA:
        return self._ensure(
            now,
            lambda ca: ca.seal_certificate(company.credit_code) is not None,
            lambda ca: ca.issue_seal_certificate(company, now - BACKDATE),
        )

    async def ca(self, now: datetime) -> PlatformCA:
        if self._ca is not None:
            return self._ca
        return await asyncio.to_thread(self._open, now)

    async def ca_with_seal(self, company: Company, now: datetime) -> PlatformCA:
        ca = self._ca
        if ca is not None and ca.seal_certificate(company.credit_code) is not None:
            return ca
        return await asyncio.to_thread(self._with_seal, company, now)

    async def ca_with_tsa(self, now: datetime) -> PlatformCA:
        """The CA with its time-stamping key (keystores made before it get one now)."""
        ca = self._ca
        if ca is not None and ca.tsa_certificate is not None:
            return ca
        return await asyncio.to_thread(
            self._ensure,
            now,
            lambda ca: ca.tsa_certificate is not None,
            lambda ca: ca.issue_tsa_certificate(now - BACKDATE),
        )
