"""SMS one-time-code policy: every rule, with the clock moved by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from signing.otp import (
    OtpChallenge,
    OtpError,
    OtpExpiredError,
    OtpInvalidError,
    OtpLockedError,
    OtpPolicy,
    OtpResendTooSoonError,
    OtpSendLimitError,
    OtpUsedError,
    OtpVerified,
    hash_code,
)

KEY = b"k" * 32
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PHONE = "13812345678"
POLICY = OtpPolicy()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def issue(
    now: datetime = T0, purpose: str = "login", subject: str = PHONE, inherited: int = 0
) -> tuple[OtpChallenge, str]:
    return POLICY.issue(purpose, subject, PHONE, KEY, now, inherited_failures=inherited)


def verify(
    record: OtpChallenge, code: str, now: datetime, purpose: str = "login", subject: str = PHONE
) -> tuple[OtpChallenge, OtpVerified | OtpError]:
    return POLICY.verify(record, code, KEY, now, purpose=purpose, subject=subject)


def test_defaults_are_the_product_rules() -> None:
    assert POLICY.code_length == 6
    assert POLICY.ttl == timedelta(minutes=5)
    assert POLICY.max_failures == 5
    assert POLICY.lock_duration == timedelta(minutes=30)
    assert POLICY.resend_interval == timedelta(seconds=60)
    assert (POLICY.max_sends_short_window, POLICY.short_window) == (5, timedelta(minutes=10))
    assert (POLICY.max_sends_long_window, POLICY.long_window) == (20, timedelta(days=1))


def test_issue_gives_six_digits_and_stores_only_a_keyed_hash() -> None:
    record, code = issue()
    assert len(code) == 6 and code.isdigit()
    assert code not in repr(record)
    assert record.code_hash == hash_code(KEY, record.id, "login", PHONE, code)
    assert record.expires_at == T0 + timedelta(minutes=5)
    assert (record.failures, record.used_at) == (0, None)


def test_equal_codes_hash_differently_per_challenge() -> None:
    a = hash_code(KEY, "id-a", "login", PHONE, "123456")
    b = hash_code(KEY, "id-b", "login", PHONE, "123456")
    other_key = hash_code(b"x" * 32, "id-a", "login", PHONE, "123456")
    assert len({a, b, other_key}) == 3


def test_codes_are_random() -> None:
    codes = {issue()[1] for _ in range(50)}
    assert len(codes) > 40


def test_right_code_verifies_once() -> None:
    record, code = issue()
    used, outcome = verify(record, code, T0 + timedelta(minutes=1))
    assert isinstance(outcome, OtpVerified)
    assert (outcome.purpose, outcome.subject, outcome.phone) == ("login", PHONE, PHONE)
    assert used.used_at == T0 + timedelta(minutes=1)

    again, outcome = verify(used, code, T0 + timedelta(minutes=2))
    assert isinstance(outcome, OtpUsedError) and outcome.code == "otp_used"
    assert again == used


def test_surrounding_whitespace_is_ignored() -> None:
    record, code = issue()
    _, outcome = verify(record, f" {code}\n", T0)
    assert isinstance(outcome, OtpVerified)


def test_expired_code_is_refused() -> None:
    record, code = issue()
    _, outcome = verify(record, code, T0 + timedelta(minutes=5))
    assert isinstance(outcome, OtpExpiredError) and outcome.code == "otp_expired"
    _, outcome = verify(record, code, T0 + timedelta(minutes=4, seconds=59))
    assert isinstance(outcome, OtpVerified)


def test_wrong_code_tells_remaining_tries_then_locks() -> None:
    record, code = issue()
    now = T0
    for remaining in (4, 3, 2, 1):
        now += timedelta(seconds=5)
        record, outcome = verify(record, wrong(code), now)
        assert isinstance(outcome, OtpInvalidError)
        assert outcome.code == "otp_invalid"
        assert outcome.remaining == remaining
        assert outcome.extensions() == {"remaining_tries": remaining}
        assert str(remaining) in outcome.detail

    now += timedelta(seconds=5)
    record, outcome = verify(record, wrong(code), now)
    assert isinstance(outcome, OtpLockedError) and outcome.code == "otp_locked"
    assert outcome.unlock_at == now + timedelta(minutes=30)
    assert outcome.retry_after == 30 * 60
    assert record.failures == 5 and record.locked_until == now + timedelta(minutes=30)

    # The 6th try on the dead code is refused even with the right code.
    dead, outcome = verify(record, code, now + timedelta(seconds=1))
    assert isinstance(outcome, OtpLockedError)
    assert dead == record


def test_malformed_code_counts_as_a_wrong_try() -> None:
    record, _ = issue()
    record, outcome = verify(record, "12ab", T0)
    assert isinstance(outcome, OtpInvalidError) and outcome.remaining == 4
    record, outcome = verify(record, "١٢٣٤٥٦", T0)  # non-ASCII digits
    assert isinstance(outcome, OtpInvalidError) and outcome.remaining == 3
    record, outcome = verify(record, "\ud800" * 6, T0)  # lone surrogates
    assert isinstance(outcome, OtpInvalidError) and outcome.remaining == 2


def fail_n(record: OtpChallenge, code: str, n: int, now: datetime) -> OtpChallenge:
    for _ in range(n):
        record, _ = verify(record, wrong(code), now)
    return record


def test_new_code_inherits_failures_of_the_subject() -> None:
    first, code = issue()
    first = fail_n(first, code, 3, T0 + timedelta(seconds=10))

    later = T0 + timedelta(minutes=2)
    POLICY.check_send([T0], first, later)
    inherited = POLICY.inherited_failures(first, later)
    assert inherited == 3
    second, code2 = issue(later, inherited=inherited)

    second, outcome = verify(second, wrong(code2), later)
    assert isinstance(outcome, OtpInvalidError) and outcome.remaining == 1
    second, outcome = verify(second, wrong(code2), later)
    assert isinstance(outcome, OtpLockedError)

    # Locked: no new code for this subject until the lock lifts.
    with pytest.raises(OtpLockedError) as exc:
        POLICY.check_send([T0, later], second, later + timedelta(minutes=29))
    assert exc.value.unlock_at == later + timedelta(minutes=30)
    assert exc.value.retry_after == 60
    assert exc.value.extensions()["retry_after"] == 60


def test_lock_lifts_after_thirty_minutes() -> None:
    record, code = issue()
    record = fail_n(record, code, 5, T0)
    assert record.locked_until == T0 + timedelta(minutes=30)

    with pytest.raises(OtpLockedError):
        POLICY.check_send([T0], record, T0 + timedelta(minutes=29, seconds=59))

    unlocked = T0 + timedelta(minutes=30)
    POLICY.check_send([T0], record, unlocked)
    assert POLICY.inherited_failures(record, unlocked) == 0
    fresh, fresh_code = issue(unlocked, inherited=0)
    _, outcome = verify(fresh, fresh_code, unlocked)
    assert isinstance(outcome, OtpVerified)

    # The old code stays dead after the lock: it has long expired.
    _, outcome = verify(record, code, unlocked)
    assert isinstance(outcome, OtpExpiredError)


def test_failures_are_forgotten_after_success_or_a_quiet_half_hour() -> None:
    record, code = issue()
    record = fail_n(record, code, 2, T0)
    assert POLICY.inherited_failures(record, T0 + timedelta(minutes=29)) == 2
    assert POLICY.inherited_failures(record, T0 + timedelta(minutes=30)) == 0

    used, _ = verify(record, code, T0)
    assert POLICY.inherited_failures(used, T0 + timedelta(minutes=1)) == 0
    assert POLICY.inherited_failures(None, T0) == 0


def test_issue_refuses_an_already_locked_failure_count() -> None:
    with pytest.raises(ValueError):
        issue(inherited=5)


def test_resend_within_sixty_seconds_is_refused() -> None:
    record, _ = issue()
    with pytest.raises(OtpResendTooSoonError) as exc:
        POLICY.check_send([T0], record, T0 + timedelta(seconds=45))
    assert exc.value.code == "otp_resend_too_soon"
    assert exc.value.retry_after == 15
    with pytest.raises(OtpResendTooSoonError) as exc:
        POLICY.check_send([T0], record, T0 + timedelta(seconds=59, milliseconds=500))
    assert exc.value.retry_after == 1
    POLICY.check_send([T0], record, T0 + timedelta(seconds=60))


def sends(start: datetime, count: int, step: timedelta) -> list[datetime]:
    return [start + i * step for i in range(count)]


def test_sixth_send_in_ten_minutes_is_refused() -> None:
    history = sends(T0, 5, timedelta(minutes=1))  # 8:00 .. 8:04
    now = T0 + timedelta(minutes=5)
    with pytest.raises(OtpSendLimitError) as exc:
        POLICY.check_send(history, None, now)
    assert exc.value.code == "otp_send_limit"
    # The 8:00 send leaves the window at 8:10.
    assert exc.value.retry_after == 5 * 60
    POLICY.check_send(history, None, T0 + timedelta(minutes=10))


def test_twenty_first_send_in_a_day_is_refused() -> None:
    history = sends(T0, 20, timedelta(minutes=30))  # spaced out, short window never full
    now = history[-1] + timedelta(minutes=30)
    with pytest.raises(OtpSendLimitError) as exc:
        POLICY.check_send(history, None, now)
    assert exc.value.retry_after == int((T0 + timedelta(days=1) - now).total_seconds())
    POLICY.check_send(history, None, T0 + timedelta(days=1))


def test_send_limits_count_only_this_phones_history_in_the_window() -> None:
    old = sends(T0 - timedelta(days=2), 30, timedelta(minutes=1))
    POLICY.check_send(old, None, T0)


def test_record_send_keeps_a_day() -> None:
    history: tuple[datetime, ...] = ()
    now = T0
    for _ in range(3):
        history = POLICY.record_send(history, now)
        now += timedelta(hours=13)
    assert history == (T0 + timedelta(hours=13), T0 + timedelta(hours=26))


def test_code_bound_to_one_document_fails_for_another() -> None:
    subject_a = "order-1:buyer-1:" + "a" * 64
    subject_b = "order-1:buyer-1:" + "b" * 64
    record, code = issue(purpose="sign", subject=subject_a)

    record, outcome = verify(record, code, T0, purpose="sign", subject=subject_b)
    assert isinstance(outcome, OtpInvalidError)
    _, outcome = verify(record, code, T0, purpose="login", subject=subject_a)
    assert isinstance(outcome, OtpInvalidError)
    _, outcome = verify(record, code, T0, purpose="sign", subject=subject_a)
    assert isinstance(outcome, OtpVerified)


def test_code_does_not_verify_under_another_key() -> None:
    record, code = issue()
    _, outcome = POLICY.verify(record, code, b"z" * 32, T0, purpose="login", subject=PHONE)
    assert isinstance(outcome, OtpInvalidError)


def test_a_tampered_record_does_not_help() -> None:
    record, code = issue()
    # Someone rewriting the stored binding still cannot make the code match another one.
    forged = replace(record, subject="other")
    _, outcome = verify(forged, code, T0, subject="other")
    assert isinstance(outcome, OtpInvalidError)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        POLICY.issue("login", PHONE, PHONE, KEY, datetime(2025, 1, 1))


def test_custom_policy_numbers() -> None:
    policy = OtpPolicy(max_failures=2, ttl=timedelta(minutes=1))
    record, code = policy.issue("login", PHONE, PHONE, KEY, T0)
    record, outcome = policy.verify(record, wrong(code), KEY, T0, purpose="login", subject=PHONE)
    assert isinstance(outcome, OtpInvalidError) and outcome.remaining == 1
    _, outcome = policy.verify(
        record, code, KEY, T0 + timedelta(minutes=1), purpose="login", subject=PHONE
    )
    assert isinstance(outcome, OtpExpiredError)


def test_errors_carry_chinese_detail_and_status() -> None:
    for error in (
        OtpInvalidError(3),
        OtpExpiredError(),
        OtpUsedError(),
        OtpLockedError(T0, 1800),
        OtpResendTooSoonError(30),
        OtpSendLimitError(600),
    ):
        assert error.code.startswith("otp_")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in error.detail)
        assert 400 <= error.status < 500
