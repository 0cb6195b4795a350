"""RFC 9457 problem+json answers with a stable machine ``code`` and a Chinese ``detail``.

Rules raise ``api.core.errors.DomainError``, which knows no HTTP; ``STATUS_BY_CODE``
below is the one place that decides which status each code answers with. Litestar's own
HTTP errors and anything unexpected become the same shape. A 500 is always a bug and is
logged as one (so is a code missing from the table).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.serialization import encode_json
from litestar.types import Scope, Send

from api.core.errors import DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://wangqian.example/problems/"

log = logging.getLogger("wangqian.errors")

# Every code a rule may answer with, by HTTP status. A code stands in one row only
# (tests/api/core/test_problems.py reads every raise in api/ and checks it is here).
_CODES_BY_STATUS: dict[int, tuple[str, ...]] = {
    400: (
        "bad_request",
        "otp_expired",
        "otp_invalid",
        "otp_not_requested",
        "totp_confirm_invalid",
    ),
    401: (
        "bank_signature_invalid",
        "bank_signature_missing",
        "bank_signature_stale",
        "not_authenticated",
        "session_expired",
        "session_invalid",
        "totp_invalid",
        "totp_replayed",
        "totp_required",
        "wechat_code_invalid",
        "wechat_code_used",
    ),
    403: (
        "citizen_only",
        "face_check_stale",
        "face_verification_required",
        "forbidden",
        "name_mismatch",
        "not_a_party",
        "not_order_creator",
        "not_staff",
        "not_the_applicant",
        "order_other_company",
        "party_minor",
        "project_not_assigned",
        "role_forbidden",
        "staff_disabled",
        "staff_only",
        "staff_pending",
        "staff_rejected",
        "title_not_owner",
        "totp_enrollment_required",
        "wechat_risky_user",
        # issue 19: a contract password shown before is shown again after a fresh SMS code
        "password_code_required",
    ),
    404: ("not_found", "scene_unknown", "unit_not_found"),
    405: ("method_not_allowed",),
    409: (
        "account_already_reviewed",
        "account_not_approved",
        "account_number_taken",
        "already_sealed",
        "already_signed",
        "already_submitted",
        "bank_instruction_mismatch",
        "bank_instruction_not_open",
        "bank_txn_conflict",
        "building_exists",
        "cancellation_closed",
        "cancellation_not_ready",
        "cancellation_not_signable",
        "cancellation_open",
        "cancellation_signed_by_all",
        "cannot_disable_self",
        "challenge_mismatch",
        "company_exists",
        "contract_not_cancellable",
        "contract_not_signed",
        "contract_not_transferable",
        "deposit_unpaid",
        "document_changed",
        "document_not_issued",
        "documents_limit",
        "evidence_not_ready",
        "filing_not_pending",
        "funds_not_settled",
        "id_number_taken",
        "idempotency_in_progress",
        "key_amounts_fixed",
        "key_rate_not_set",
        "ledger_guard",
        "message_not_dead",
        "message_purged",
        "not_ready_for_seal",
        "not_resale",
        "notice_cancelled",
        "notice_closed",
        "order_completed",
        "order_not_draft",
        "order_not_issued",
        "order_not_signable",
        "otp_conflict",
        "otp_used",
        "pdf_not_ready",
        "permit_already_revoked",
        "permit_change_decided",
        "permit_change_open",
        "permit_change_pending",
        "permit_exists",
        "permit_not_found",
        "permit_overlaps",
        "permit_revoked",
        "phone_already_bound",
        "phone_required",
        "phone_taken",
        "project_area_unknown",
        "project_has_account",
        "real_name_already_set",
        "real_name_required",
        "release_already_reviewed",
        "release_exceeds_limit",
        "release_in_progress",
        "restriction_already_lifted",
        "seal_not_applicable",
        "seal_unavailable",
        "signatures_missing",
        "staff_already_reviewed",
        "staff_phone_taken",
        "supervised_account_missing",
        "suspense_account_mismatch",
        "suspense_already_assigned",
        "title_check_required",
        "title_exists",
        "title_restricted",
        "title_unavailable",
        "totp_already_enabled",
        "totp_not_started",
        "unit_already_property_management",
        "unit_not_for_sale",
        "unit_restricted",
        "unit_unavailable",
        "wechat_login_required",
        "wechat_not_bound",
        # issue 19: consent to an older notice; a receipt of a notice not paid in full
        "pi_consent_required",
        "pi_notice_outdated",
        "receipt_not_ready",
    ),
    410: (
        "contract_cancelled",
        "draft_expired",
        "order_expired",
        "order_voided",
        "password_already_shown",
        "qr_expired",
    ),
    413: ("document_too_large", "payload_too_large"),
    415: ("document_type_unsupported", "unsupported_media_type"),
    422: (
        "amounts_invalid",
        "applicant_unknown",
        "bank_event_invalid",
        "bank_instruction_unknown",
        "buyer_is_seller",
        "buyers_duplicate",
        "co_ownership_required",
        "contract_text_incomplete",
        "delivery_date_invalid",
        "document_empty",
        "document_type_mismatch",
        "id_number_birth_date",
        "id_number_check_char",
        "id_number_format",
        "idempotency_key_invalid",
        "idempotency_key_reused",
        "invalid_body",
        "invalid_parameter",
        "malformed_json",
        "milestone_duplicate",
        "milestone_percents_rising",
        "milestone_unknown",
        "name_invalid",
        "party_name_invalid",
        "pdf_invalid",
        "permit_change_empty",
        "permit_dates_invalid",
        "permit_units_invalid",
        "permit_without_units",
        "phone_invalid",
        "project_not_in_company",
        "projects_for_agents_only",
        "real_name_mismatch",
        "reason_required",
        "restriction_dates_invalid",
        "role_not_allowed",
        "seller_account_required",
        "seller_phone_required",
        "seller_phones_invalid",
        "share_invalid",
        "share_required",
        "shares_invalid",
        "sms_receipt_invalid",
        "staff_company_invalid",
        "subscription_result_invalid",
        "subscription_template_unknown",
        "survey_invalid",
        "template_unknown",
        "title_check_failed",
        "title_without_owner",
        "unknown_field",
        "uscc_invalid",
    ),
    429: (
        "otp_locked",
        "otp_resend_too_soon",
        "otp_send_limit",
        "rate_limited",
        "title_check_locked",
        "totp_locked",
        "wechat_rate_limited",
    ),
    500: ("internal_error",),
    503: (
        "bank_not_configured",
        "database_unavailable",
        "face_unavailable",
        "idcheck_unavailable",
        "sms_unavailable",
        "tsa_unavailable",
        "wechat_busy",
        "wechat_unavailable",
    ),
}
STATUS_BY_CODE: dict[str, int] = {
    code: status for status, codes in _CODES_BY_STATUS.items() for code in codes
}


class ProblemError(Exception):
    """A problem+json answer: a ``DomainError`` with its HTTP status decided."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = code.replace("_", " ")
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def of(cls, error: DomainError) -> ProblemError:
        status = STATUS_BY_CODE.get(error.code)
        if status is None:
            log.error("refusal code %r has no HTTP status in STATUS_BY_CODE", error.code)
            return _internal_error()
        retry_after = error.extra.get("retry_after")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return cls(status, error.code, error.detail, headers=headers, **error.extra)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def _internal_error() -> ProblemError:
    return ProblemError(500, "internal_error", "服务器内部错误，我们已记录此问题，请稍后重试。")


def problem_response(problem: ProblemError, request: Request[Any, Any, Any]) -> Response[Any]:
    headers = dict(problem.headers)
    request_id = request.scope.get("state", {}).get("request_id")
    body = problem.body(instance=request.scope["path"])  # as send_problem; no URL parse
    if request_id:
        body["request_id"] = request_id
    # Encoded here, by the encoder Litestar would use itself: bytes pass through its
    # response untouched (a guessing flood of public verify is mostly these answers).
    return Response(
        content=encode_json(body),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def send_problem(send: Send, problem: ProblemError, scope: Scope) -> None:
    """The same answer from ASGI middleware, which runs outside Litestar's handlers."""
    body = msgspec.json.encode(problem.body(instance=scope.get("path")))
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]
    headers += [(k.encode(), v.encode()) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _validation_problem(exc: ValidationException) -> ProblemError:
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = exc.detail or ""
    sources = {e.get("source") for e in errors if isinstance(e, dict)}
    if sources & {"query", "path", "header", "cookie"} and "body" not in sources:
        code, message = "invalid_parameter", "请求参数不符合要求，请检查后重试。"
    elif "unknown field" in detail.lower() or any(
        "unknown field" in str(e).lower() for e in errors
    ):
        code, message = "unknown_field", "请求中包含不被接受的字段。"
    elif "JSON" in detail or "malformed" in detail.lower():
        code, message = "malformed_json", "请求体不是合法的 JSON。"
    else:
        code, message = "invalid_body", "请求内容不符合要求，请检查后重试。"
    return ProblemError(422, code, message, errors=[_plain(e) for e in errors])


def _plain(error: Any) -> Any:
    return error if isinstance(error, dict | str | int | float) else str(error)


_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求无效。"),
    401: ("not_authenticated", "请先登录。"),
    403: ("forbidden", "没有权限进行此操作。"),
    404: ("not_found", "未找到请求的资源。"),
    405: ("method_not_allowed", "不支持该请求方法。"),
    413: ("payload_too_large", "请求内容过大。"),
    415: ("unsupported_media_type", "不支持的内容类型，请使用 JSON。"),
    429: ("rate_limited", "请求过于频繁，请稍后再试。"),
}


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return problem_response(ProblemError.of(exc), request)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return problem_response(_validation_problem(exc), request)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return handle_unexpected(request, exc)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "请求无法处理。"))
    headers = dict(exc.headers or {})
    return problem_response(ProblemError(exc.status_code, code, message, headers=headers), request)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _is_malformed_body(exc):
        # A body too deeply nested to decode is the client's fault, not ours: one line in
        # the log (no traceback: anyone could fill the log with them), and a 422.
        log.warning("malformed body on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            ProblemError(422, "malformed_json", "请求体不是合法的 JSON。"), request
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(_internal_error(), request)


def _is_malformed_body(exc: Exception) -> bool:
    """msgspec gives up on nesting deeper than the interpreter's recursion limit with a
    RecursionError of its own wording; only that one is the body's fault."""
    return isinstance(exc, RecursionError) and "deserializing" in str(exc)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: handle_domain_error,
    ValidationException: handle_validation,
    NotFoundException: handle_http,
    MethodNotAllowedException: handle_http,
    NotAuthorizedException: handle_http,
    PermissionDeniedException: handle_http,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "STATUS_BY_CODE",
    "MediaType",
    "ProblemError",
]
