"""The city's choices that change a contract's path, read once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from api.settings import Settings


@dataclass(frozen=True)
class ContractPolicy:
    # "review": a sealed contract waits for a regulator (待备案); "auto": filed at the seal.
    filing_mode: Literal["review", "auto"]
    # The deposit notice opens at issue, and buyers sign once it is paid (seed 001).
    deposit_before_signing: bool
    # How recent a face check a signature needs.
    face_max_age: timedelta
    # How browsers reach this server: the links in QR codes and SMS.
    public_base_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ContractPolicy:
        return cls(
            filing_mode=settings.filing_mode,
            deposit_before_signing=settings.deposit_before_signing,
            face_max_age=timedelta(minutes=settings.face_max_age_minutes),
            public_base_url=settings.public_base_url,
        )
