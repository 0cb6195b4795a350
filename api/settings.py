"""Configuration: one msgspec Struct read from ``WANGQIAN_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

ENV_PREFIX = "WANGQIAN_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of the service. Field ``x`` is read from ``WANGQIAN_X``."""

    data_dir: Path = Path("var")
    # Empty means the embedded default: a SQLite file in data_dir.
    database_url: str = ""
    # Master secret from which PII, OTP and session keys are derived. Empty means
    # "generate one into DATA_DIR/secret.key on first start" (the demo's way).
    secret_key: str = ""
    mocks_enabled: bool = False
    public_base_url: str = "http://127.0.0.1:8000"
    redis_url: str = ""
    # Load balancers in front of the API nodes (addresses or networks, comma-separated):
    # from these peers, X-Forwarded-For names the client (per-address rate limits).
    # Empty = the peer is the client; never list addresses that clients can reach from.
    trusted_proxies: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    # Idempotency records are kept this long, then a new request may reuse the key.
    idempotency_ttl_seconds: int = 24 * 3600
    # A request holding a key that has not answered after this long is presumed dead.
    idempotency_lock_seconds: int = 60

    # Outside services. Each is chosen here; the choice is made in api/outside.py alone.
    # With mocks enabled, a service not configured means its stand-in under
    # PUBLIC_BASE_URL/mock, speaking the provider's own protocol, with credentials derived
    # from the master secret (api.outside.mock_credentials); with mocks off, "not
    # configured" (calls answer 503, messages fail with a clear code). Endpoints default to
    # the providers' public hosts; set them for tests, private gateways or a city's proxy.
    # WeChat server API (jscode2session, stable_token, subscribe messages, face checks).
    wechat_api_base: str = ""
    # The mini program's AppID and AppSecret.
    wechat_appid: str = ""
    wechat_secret: str = ""
    # Subscribe-message templates of this mini program (issued in the WeChat console):
    # JSON {"contract_signed": {"id": "...", "data": {"thing1": "estate", ...}}, ...}.
    wechat_templates: str = ""
    # SMS: "aliyun" (Alibaba Cloud dysmsapi) | "tencent" (Tencent Cloud SMS) | "mock" (the
    # mounted stand-in, over the Alibaba Cloud protocol); empty = "mock" with mocks enabled.
    sms_provider: Literal["", "aliyun", "tencent", "mock"] = ""
    sms_endpoint: str = ""
    # AccessKeyId / SecretId and AccessKeySecret / SecretKey.
    sms_access_key: str = ""
    sms_secret: str = ""
    # The approved signature (签名), without 【】.
    sms_sign_name: str = ""
    # JSON: our template keys -> the provider's template codes (and, optionally, the
    # order of their variables): {"one_time_code": "SMS_123", "contract_signed": {...}}.
    sms_template_codes: str = ""
    # Tencent: the SmsSdkAppId and the API region.
    sms_app_id: str = ""
    sms_region: str = "ap-guangzhou"
    # The secret path segment of the delivery-receipt callback URL given to the provider
    # (/api/v1/webhooks/sms/<token>); empty = derived from the master secret.
    sms_receipt_token: str = ""
    # Real-name check: "tencent" (FaceID IdCardVerification) | "mock"; empty = "mock" with
    # mocks enabled.
    idcheck_provider: Literal["", "tencent", "mock"] = ""
    idcheck_endpoint: str = ""
    idcheck_secret_id: str = ""
    idcheck_secret_key: str = ""
    # Face check: "tencent" (FaceID DetectAuth, H5) | "wechat" (WeChat's face verification
    # for government mini programs, uses the WeChat settings) | "mock"; empty = "mock" with
    # mocks enabled (the mock speaks the Tencent FaceID protocol).
    face_provider: Literal["", "tencent", "wechat", "mock"] = ""
    face_endpoint: str = ""
    face_secret_id: str = ""
    face_secret_key: str = ""
    # Tencent FaceID: the RuleId of the business flow configured in its console.
    face_rule_id: str = ""
    # Tencent Cloud API region of FaceID (real-name and face checks).
    faceid_region: str = "ap-guangzhou"
    # Login sessions end after this long without a request ...
    session_idle_minutes: int = 30
    # ... and in any case this long after login.
    session_absolute_hours: int = 12
    # Auth endpoints (/api/v1/auth/...): requests per minute from one IP address ...
    auth_ip_limit_per_minute: int = 30
    # ... and per phone number per hour (on top of the SMS code send limits).
    auth_phone_limit_per_hour: int = 30

    # Passphrase of the platform CA keystore (DATA_DIR/keystore, created on first use).
    # Empty means "derived from the master secret": fine for the demo and one machine,
    # but then whoever has the master secret and the files has the CA keys; set it
    # explicitly in production (and keep it apart from the master secret).
    keystore_passphrase: str = ""

    # The notification outbox worker: "embedded" runs it inside each API process (the
    # embedded default); "off" when `wangqian worker` processes deliver instead.
    outbox_worker: Literal["embedded", "off"] = "embedded"
    # How often an idle worker looks for due messages, in seconds.
    outbox_poll_seconds: float = 1.0

    # Supervised funds (issue #6). Secrets the bank signs its webhooks with, comma-separated;
    # two at once while rotating. Empty with mocks enabled = the demo secret derived from the
    # master secret (api.outside.mock_bank_webhook_secret); empty otherwise = webhooks answer 503.
    bank_webhook_secrets: str = ""
    # How far a webhook's signed timestamp may be from our clock, in seconds.
    bank_webhook_tolerance_seconds: int = 300
    # The bank's payment page a payment notice's QR code opens (?reference=&amount_fen=&account=).
    # Empty with mocks enabled = the mock bank under PUBLIC_BASE_URL/mock/bank/pay.
    bank_pay_url: str = ""
    # The secret the pay link's amount and reference are signed with; the bank's pay page
    # checks it (empty with mocks enabled = derived from the master secret).
    bank_pay_link_secret: str = ""
    # The bank's instruction gateway (银企直联 front-end): approved refunds and releases
    # are POSTed there, signed with BANK_GATEWAY_SECRET. Empty = the bank pulls them
    # (GET /api/v1/webhooks/bank/instructions); with mocks enabled = the mock bank.
    bank_gateway_url: str = ""
    bank_gateway_secret: str = ""
    # PEM certificate(s) of the bank whose key signs webhooks (X-Bank-Signature-Cert);
    # when set, certificate signatures are accepted besides the shared secrets.
    bank_webhook_certificate: str = ""

    # After the seal: "review" (a contract waits for a regulator's filing decision, 待备案)
    # or "auto" (cities where signing online is filing, 网签即备案: filed at the seal).
    filing_mode: Literal["review", "auto"] = "review"
    # Seed 001: the deposit notice opens when the order is issued, and buyers sign only once
    # paid equals due; false opens the notices when the contract is complete.
    deposit_before_signing: bool = True
    # A signature (a contract's or a cancellation's) needs a face check this recent.
    face_max_age_minutes: int = 10
    # Seal keepers and regulators act only with an authenticator (TOTP) enrolled; unset =
    # required unless mocks are enabled (the demo, whose people have no authenticator).
    staff_totp_required: bool | None = None

    # The signed contract PDF (issue 15): a Chinese OpenType/TrueType font or collection
    # (its Simplified Chinese face is used), embedded as a subset. Checked when the
    # service starts: a missing font stops it with a clear message.
    pdf_font: str = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
    # An RFC 3161 time-stamping authority for signatures, evidence and PDFs. Empty = the
    # platform's own TSA (its certificate under the platform root, served at /api/v1/public/tsa).
    tsa_url: str = ""
    tsa_timeout_seconds: float = 10.0

    @property
    def totp_required_for_staff(self) -> bool:
        if self.staff_totp_required is not None:
            return self.staff_totp_required
        return not self.mocks_enabled

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wangqian.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def master_secret(self) -> bytes:
        """The master secret; generated once into the data directory when not configured."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL so two workers starting together cannot write two different secrets.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``WANGQIAN_*`` variables; keyword overrides win (used by the CLI and tests)."""
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            key = ENV_PREFIX + name.upper()
            if key in env:
                raw[name] = env[key]
        raw.update({k: v for k, v in overrides.items() if v is not None})
        # strict=False lets "1"/"true" become bool and "8000" become int.
        return msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)


def _decode_path(type_: type, obj: object) -> object:
    if type_ is Path and isinstance(obj, str | Path):
        return Path(obj)
    raise NotImplementedError
