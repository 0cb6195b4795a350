"""TOTP for staff: enrollment artefacts, drift window, replay refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from signing.qr import qr_png
from signing.totp import (
    ISSUER,
    TotpInvalidError,
    TotpReplayedError,
    enroll,
    time_step,
    verify,
)

T0 = datetime(2025, 3, 1, 8, 0, 10, tzinfo=UTC)
STEP = timedelta(seconds=30)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def test_enrollment_gives_secret_uri_and_png() -> None:
    enrollment = enroll("138****5678")
    assert len(enrollment.secret) == 32
    pyotp.TOTP(enrollment.secret).now()  # valid base32

    uri = urlsplit(enrollment.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{ISSUER}:138****5678"
    query = parse_qs(uri.query)
    assert query["secret"] == [enrollment.secret]
    assert query["issuer"] == ["Wangqian 网签"]

    assert enrollment.qr_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert enroll("x").secret != enrollment.secret


def test_existing_secret_can_be_rendered_again() -> None:
    first = enroll("seal-keeper")
    again = enroll("seal-keeper", secret=first.secret)
    assert again.uri == first.uri


def test_qr_png_is_a_png() -> None:
    assert qr_png("hello").startswith(b"\x89PNG")


def test_current_code_returns_its_step() -> None:
    secret = enroll("a").secret
    assert verify(secret, code_at(secret, T0), T0, last_step=None) == time_step(T0)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_one_step_of_drift_either_way_is_accepted(offset: int) -> None:
    secret = enroll("a").secret
    code = code_at(secret, T0 + offset * STEP)
    assert verify(secret, code, T0, last_step=None) == time_step(T0) + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_two_steps_away_is_refused(offset: int) -> None:
    secret = enroll("a").secret
    with pytest.raises(TotpInvalidError) as exc:
        verify(secret, code_at(secret, T0 + offset * STEP), T0, last_step=None)
    assert exc.value.code == "totp_invalid"


def test_wrong_and_malformed_codes_are_invalid() -> None:
    secret = enroll("a").secret
    good = code_at(secret, T0)
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    for code in (bad, "", "abcdef", good + "0", "١٢٣٤٥٦", "验证码验证码", "\ud800" * 6):
        with pytest.raises(TotpInvalidError):
            verify(secret, code, T0, last_step=None)


def test_replay_of_the_same_step_is_refused_and_next_step_accepted() -> None:
    secret = enroll("a").secret
    code = code_at(secret, T0)
    last = verify(secret, code, T0, last_step=None)

    with pytest.raises(TotpReplayedError) as exc:
        verify(secret, code, T0 + timedelta(seconds=5), last_step=last)
    assert exc.value.code == "totp_replayed"
    assert exc.value.detail

    later = T0 + STEP
    assert verify(secret, code_at(secret, later), later, last_step=last) == last + 1


def test_an_older_step_inside_the_window_is_a_replay() -> None:
    secret = enroll("a").secret
    ahead = verify(secret, code_at(secret, T0 + STEP), T0, last_step=None)
    with pytest.raises(TotpReplayedError):
        verify(secret, code_at(secret, T0), T0, last_step=ahead)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        time_step(datetime(2025, 1, 1))
