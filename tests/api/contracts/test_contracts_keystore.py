"""The platform CA in the app: created once on first use, shared by processes through the
data directory, and each company's seal certificate issued once."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from api.contracts.keystore import Keystore, keystore_passphrase
from api.core.clock import MovableClock
from api.settings import Settings
from signing.certificates import Company
from tests.api.world import USCC


async def test_two_processes_share_one_keystore_and_one_seal(
    settings: Settings, clock: MovableClock
) -> None:
    first, second = Keystore.from_settings(settings), Keystore.from_settings(settings)
    created = await first.ca(clock.now())
    loaded = await second.ca(clock.now())
    assert created.root_pem() == loaded.root_pem()
    assert (settings.data_dir / "keystore" / "root.crt.pem").exists()

    company = Company("测试置业有限公司", USCC)
    sealed = await first.ca_with_seal(company, clock.now())
    certificate = sealed.seal_certificate(USCC)
    assert certificate is not None
    # The second process had loaded the keystore before the seal existed: it finds the
    # seal on disk instead of issuing another key.
    assert loaded.seal_certificate(USCC) is None
    again = await second.ca_with_seal(company, clock.now())
    assert again.seal_certificate(USCC) == certificate
    assert (await second.ca_with_seal(company, clock.now())) is again  # cached


async def test_a_request_that_read_the_clock_earlier_still_finds_the_ca_valid(
    settings: Settings, clock: MovableClock
) -> None:
    # Two requests: the later one creates the keystore (and the seal) first.
    earlier = clock.now()
    ca = await Keystore.from_settings(settings).ca_with_seal(
        Company("测试置业有限公司", USCC), earlier + timedelta(seconds=5)
    )
    seal = ca.seal_certificate(USCC)
    assert seal is not None and seal.not_valid_before_utc <= earlier
    assert ca.issuing_certificate.not_valid_before_utc <= earlier


def test_the_passphrase_is_the_setting_or_derived_from_the_master_secret(
    settings: Settings,
) -> None:
    derived = keystore_passphrase(settings)
    assert derived and derived == keystore_passphrase(settings)
    assert settings.secret_key not in derived
    explicit = msgspec.structs.replace(settings, keystore_passphrase="correct horse battery")
    assert keystore_passphrase(explicit) == "correct horse battery"
