"""Mock SMS providers: Alibaba Cloud dysmsapi and Tencent Cloud SMS on their own wire
protocols (``sms_aliyun``, ``sms_tencent``), sharing one account, one set of approved
templates and one inbox where demo users read their messages.

Like the real services, the mock renders only approved templates (there is no free text),
refuses templates with 【】 or [], links built from variables, touching variables or
nothing but variables, refuses variables that are too long or carry links, and does not
de-duplicate: a message sent twice arrives twice.

Test helpers (not part of either provider's API): ``GET /sms/inbox?phone=``,
``POST /sms/faults`` (fail the next sends with a provider code, or deliver them and then
answer an error as a lost answer would look), ``POST /sms/templates`` (submit a template
for "approval": refused with the reasons when it breaks a rule), ``GET /sms/templates``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from miniapp_mock._common import Clock, new_id

INBOX_SIZE = 50
NONCE_MEMORY = timedelta(minutes=30)
_VARIABLE = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
LINKISH = re.compile(r"(https?://|www\.|\.(cn|com|net|gov)\b)", re.IGNORECASE)
PHONE = re.compile(r"1[3-9][0-9]{9}")


class TemplateSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An approved template: the provider's code, its name, and its text with ``${name}``
    variables (Tencent shows them as {1}, {2}, ... in that order)."""

    code: str
    name: str
    text: str
    verification: bool = False


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    next_code: str
    status: int = 200
    message: str = ""
    count: int = 1  # fail this many of the next sends
    # refuse: nothing is sent; deliver: the message is sent, then this error is answered
    # (what a client sees when the answer is lost on the way back).
    mode: Literal["refuse", "deliver"] = "refuse"


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: str
    phone: str
    text: str
    template: str  # the template's name
    params: dict[str, str]
    sent_at: datetime
    out_id: str  # Alibaba OutId / Tencent SessionContext
    provider: str
    status: int = 3  # Alibaba SendStatus: 3 delivered (the mock's handsets always answer)


def template_problems(spec: TemplateSpec) -> list[str]:
    """Why a provider's review would refuse this template (empty: approved)."""
    problems = []
    names = _VARIABLE.findall(spec.text)
    if any(mark in spec.text for mark in "【】[]"):
        problems.append("模板内容不能包含【】或[]，签名由签名名称提供")
    if "}${" in spec.text:
        problems.append("不支持变量相邻")
    if len(set(names)) != len(names):
        problems.append("同一变量仅可出现一次")
    if re.search(r"(https?://|www\.)\S*\$\{|\$\{[^}]*\}\.(cn|com|net)", spec.text):
        problems.append("不支持设置变量链接")
    if len(_VARIABLE.sub("", spec.text).strip()) < 4:
        problems.append("不支持全变量模板")
    if spec.verification and (len(names) != 1 or "验证码" not in spec.text):
        problems.append("验证码模板仅支持一个变量，且须包含“验证码”")
    return problems


@dataclass
class SmsGatewayState:
    access_key: str
    secret: str
    sign_name: str
    app_id: str
    clock: Clock
    templates: dict[str, TemplateSpec] = field(default_factory=dict)
    inbox: dict[str, deque[Delivered]] = field(default_factory=dict)
    sent: list[Delivered] = field(default_factory=list)
    nonces: dict[str, datetime] = field(default_factory=dict)
    faults: deque[FaultRequest] = field(default_factory=deque)

    def approve(self, spec: TemplateSpec) -> list[str]:
        problems = template_problems(spec)
        if not problems:
            self.templates[spec.code] = spec
        return problems

    def nonce_seen(self, nonce: str) -> bool:
        now = self.clock()
        self.nonces = {n: t for n, t in self.nonces.items() if now - t <= NONCE_MEMORY}
        if nonce in self.nonces:
            return True
        self.nonces[nonce] = now
        return False

    def variables(self, code: str) -> list[str]:
        return _VARIABLE.findall(self.templates[code].text)

    def deliver(
        self, provider: str, phone: str, code: str, params: dict[str, str], out_id: str
    ) -> Delivered:
        spec = self.templates[code]
        text = _VARIABLE.sub(lambda m: params[m.group(1)], spec.text)
        message = Delivered(
            new_id("sms-"), phone, f"【{self.sign_name}】{text}", spec.name, dict(params),
            self.clock(), out_id, provider,
        )
        self.inbox.setdefault(phone, deque(maxlen=INBOX_SIZE)).appendleft(message)
        self.sent.append(message)
        return message

    def next_fault(self) -> FaultRequest | None:
        return self.faults.popleft() if self.faults else None


def variable_problem(value: str, limit: int) -> str | None:
    """"length", "link" or "bracket" when a variable's value breaks the rules."""
    if not 1 <= len(value) <= limit:
        return "length"
    if LINKISH.search(value):
        return "link"
    if any(mark in value for mark in "【】[]"):
        return "bracket"
    return None


@get("/sms/inbox")
async def sms_inbox(phone: FromQuery[str],
                    sms_gateway: NamedDependency[SmsGatewayState]) -> list[dict[str, Any]]:
    return [
        {
            "message_id": m.message_id,
            "text": m.text,
            "template": m.template,
            "params": m.params,
            "sent_at": m.sent_at.isoformat(),
            "provider": m.provider,
        }
        for m in sms_gateway.inbox.get(phone.strip()[-11:], ())
    ]


@post("/sms/faults", status_code=200)
async def sms_faults(data: JSONBody[FaultRequest],
                     sms_gateway: NamedDependency[SmsGatewayState]) -> dict[str, int]:
    """Make the next ``count`` sends fail with this code (test helper)."""
    sms_gateway.faults.extend([data] * max(1, min(data.count, 1000)))
    return {"queued": len(sms_gateway.faults)}


@post("/sms/templates", status_code=200)
async def sms_submit_template(
    data: JSONBody[TemplateSpec], sms_gateway: NamedDependency[SmsGatewayState]
) -> Response[dict[str, Any]]:
    """Submit a template for review (test helper in the shape of a review verdict)."""
    problems = sms_gateway.approve(data)
    status = 200 if not problems else 400
    return Response({"approved": not problems, "problems": problems}, status_code=status)


@get("/sms/templates")
async def sms_templates(sms_gateway: NamedDependency[SmsGatewayState]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(t) for t in sms_gateway.templates.values()]


ROUTES = [sms_inbox, sms_faults, sms_submit_template, sms_templates]
