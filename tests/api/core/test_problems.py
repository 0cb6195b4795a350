"""The one table from refusal codes to HTTP statuses covers every refusal the code raises."""

from __future__ import annotations

import ast
from pathlib import Path

from api.core.errors import DomainError
from api.core.problems import _CODES_BY_STATUS, _HTTP_CODES, STATUS_BY_CODE, ProblemError
from signing import otp, totp

API = Path(__file__).resolve().parents[3] / "api"

# Codes built at run time, spelled out: f"id_number_{problem}", f"{service}_unavailable",
# and the codes the OTP and TOTP policies of ``signing`` answer with.
BUILT_CODES = {
    "id_number_format",
    "id_number_birth_date",
    "id_number_check_char",
    "wechat_unavailable",
    "idcheck_unavailable",
    "face_unavailable",
    *(cls.code for cls in otp.OtpError.__subclasses__()),
    *(cls.code for cls in totp.TotpError.__subclasses__()),
}


def _raised_codes() -> dict[str, str]:
    """Every literal code given to ``DomainError(...)`` in api/, with where it stands."""
    found: dict[str, str] = {}
    for path in API.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "DomainError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found[node.args[0].value] = f"{path.relative_to(API.parent)}:{node.lineno}"
    return found


def test_every_code_raised_has_one_status() -> None:
    raised = _raised_codes()
    assert len(raised) > 100  # the scan found the services' refusals
    missing = {code: where for code, where in raised.items() if code not in STATUS_BY_CODE}
    assert missing == {}
    assert BUILT_CODES - STATUS_BY_CODE.keys() == set()


def test_a_code_stands_in_one_row_only() -> None:
    rows = [code for codes in _CODES_BY_STATUS.values() for code in codes]
    assert len(rows) == len(set(rows)) == len(STATUS_BY_CODE)


def test_the_signing_policies_suggest_the_statuses_the_table_gives() -> None:
    for cls in otp.OtpError.__subclasses__():
        assert STATUS_BY_CODE[cls.code] == cls.status, cls.code


def test_litestar_errors_answer_with_codes_of_the_table() -> None:
    for status, (code, _) in _HTTP_CODES.items():
        assert STATUS_BY_CODE[code] == status


def test_a_refusal_becomes_problem_json_with_its_status_and_retry_after() -> None:
    problem = ProblemError.of(DomainError("otp_locked", "锁定", retry_after=90, unlock_at="x"))
    assert (problem.status, problem.headers) == (429, {"Retry-After": "90"})
    assert problem.body("/p") == {
        "type": "https://wangqian.example/problems/otp_locked",
        "title": "otp locked",
        "status": 429,
        "code": "otp_locked",
        "detail": "锁定",
        "instance": "/p",
        "retry_after": 90,
        "unlock_at": "x",
    }


def test_a_code_missing_from_the_table_is_a_logged_500_not_a_guess() -> None:
    problem = ProblemError.of(DomainError("no_such_code", "x"))
    assert (problem.status, problem.code) == (500, "internal_error")
