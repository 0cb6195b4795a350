"""Message templates (zh-CN) with typed parameters, for SMS and WeChat subscribe messages.

Each template names its parameters as a msgspec Struct, so a missing or mistyped
parameter is refused before anything is queued. SMS wording follows the city templates
(seed 002, 2.7: 买卖合同签订, 预售款到账, 商品房退房), rewritten to the rules the SMS
providers review templates by, so that a city can submit them for approval as they are:

* the signature (【…】) comes from the provider's SignName, never from the body, and the
  body holds no 【】 or [] at all;
* links are fixed text of the template, never variables (so the sign invitation names the
  mini program instead of carrying the order's link);
* no two variables touch, a variable appears once, a verification-code template has one
  variable (Alibaba Cloud: "验证码模板仅支持添加一个变量") and says 验证码;
* each variable has a kind with the provider's limits (``VARIABLE_RULES``).

``check_templates()`` runs at start and enforces these rules on every template.

WeChat subscribe messages: template ids and data keys are issued per mini program in the
WeChat console, so they come from settings (``parse_wechat_templates``); values follow
WeChat's types (``wechat_value``).

No message may carry a full resident ID number: ``render`` refuses any text that contains
one, whatever the parameters were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import msgspec

__all__ = [
    "TEMPLATES",
    "VARIABLE_RULES",
    "RenderedMessage",
    "Template",
    "TemplateError",
    "VariableError",
    "check_templates",
    "format_fen",
    "render",
    "sms_variables",
]

_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_LINKISH = re.compile(r"(https?://|www\.|\.(cn|com|net|gov)\b)", re.IGNORECASE)


class TemplateError(ValueError):
    """Unknown template, parameters that do not fit, or a rendered text we must not send."""


class VariableError(TemplateError):
    """Parameters of the right types whose values no provider would take (a number with a
    hyphen, a name with 【】) or must not be sent (a full ID number): a fault of the data,
    not of the code that asked for the message."""


def format_fen(amount_fen: int) -> str:
    """12345600 -> "123456.00": yuan with two decimals and no separators, the form both
    providers' 金额 variables and WeChat's ``amount`` accept."""
    return f"{Decimal(amount_fen) / 100:.2f}"


VariableKind = Literal["code", "number", "amount", "time", "text"]


@dataclass(frozen=True)
class VariableRule:
    """What a variable of one kind may hold. The lengths are the stricter of Alibaba
    Cloud's and Tencent Cloud's published variable rules as far as we could check them
    (Alibaba: 验证码 4-6, any variable 1-35; Tencent: 验证码 up to 6 digits; the
    other kinds 1-20 as the providers' 变量属性 tables give them)."""

    pattern: re.Pattern[str]
    max_length: int
    # Text may be shortened to fit (a long project name still names the project);
    # codes, numbers, amounts and times may not.
    truncate: bool = False


VARIABLE_RULES: dict[VariableKind, VariableRule] = {
    "code": VariableRule(re.compile(r"[0-9]{4,6}"), 6),
    "number": VariableRule(re.compile(r"[A-Za-z0-9]{1,20}"), 20),
    "amount": VariableRule(re.compile(r"[0-9]{1,17}(\.[0-9]{1,2})?"), 20),
    "time": VariableRule(re.compile(r"[0-9年月日:：\- ]{1,20}"), 20),
    "text": VariableRule(re.compile(r"[^【】\[\]{}<>]{1,20}"), 20, truncate=True),
}


class _Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every template's parameters."""


class Unit(_Params):
    estate: str  # 小区 / project name
    building: str
    room: str


class ContractSigned(Unit):
    buyer_name: str
    contract_number: str
    password: str


class DownPaymentArrived(Unit):
    buyer_name: str
    amount_fen: int
    business_no: str


class RefundCompleted(Unit):
    contract_number: str
    amount_fen: int


class ContractCancelled(Unit):
    contract_number: str


class ContractFiled(Unit):
    contract_number: str
    filing_number: str


class FilingRejected(Unit):
    contract_number: str
    reason: str


class CancellationInvitation(Unit):
    contract_number: str
    # The cancellation's scan link: the mini program opens it; the SMS names the mini
    # program's 我的签署 instead (providers refuse links in variables).
    link: str = ""


class SealReminder(Unit):
    business_no: str
    days: int


class SignInvitation(Unit):
    expires_at: str  # already formatted in Shanghai time, e.g. "11月24日 24:00"
    # The order's scan link: the mini program opens it; the SMS names the mini program
    # instead (providers refuse links in variables).
    link: str = ""


class SignReminder(SignInvitation):
    pass


class OneTimeCode(_Params):
    code: str
    purpose: str = ""  # kept for callers; the wording of each code template is fixed
    minutes: int = 5


@dataclass(frozen=True)
class WeChatFields:
    """A subscribe message's page and its data: WeChat keys (their prefix is WeChat's
    type: thing, amount, time, character_string, ...) mapped to our parameter names.
    The keys and the template id are the mini program's own, from settings."""

    page: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    params: type[_Params]
    sms: str
    kinds: Mapping[str, VariableKind]
    sample: Mapping[str, Any]
    verification: bool = False  # a 验证码 template: one variable, its own review class
    # WeChat subscribe message page and suggested data mapping, for templates a citizen
    # may also receive on WeChat (the mini program's own keys come from settings).
    wechat: WeChatFields | None = None
    # One-time codes go out at once, ahead of the queue, and never over WeChat.
    urgent: bool = False

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.sms))


_UNIT_KINDS: dict[str, VariableKind] = {"estate": "text", "building": "text", "room": "text"}
_UNIT_SAMPLE = {"estate": "明湖花园", "building": "1栋", "room": "301"}
_INVITE_SAMPLE = {**_UNIT_SAMPLE, "expires_at": "11月24日 24:00"}
_SIGN_PAGE = WeChatFields("pages/contract/sign", {"thing1": "estate", "time2": "expires_at"})
_CODE_KINDS: dict[str, VariableKind] = {"code": "code"}


def _code_template(key: str, title: str, what: str) -> Template:
    return Template(
        key=key,
        title=title,
        params=OneTimeCode,
        sms=f"您正在{what}，验证码为{{code}}，5分钟内有效。如非本人操作，请勿将验证码告诉他人。",
        kinds=_CODE_KINDS,
        sample={"code": "123456"},
        verification=True,
        urgent=True,
    )


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in [
        Template(
            key="contract_signed",
            title="买卖合同签订",
            params=ContractSigned,
            # Seed 002, word for word (its punctuation too).
            sms=(
                "尊敬的{buyer_name}，您购买的{estate}，{building}，{room}室已签订网签合同，"
                "合同编号为：{contract_number}，合同密码为{password}。请妥善保管。"
            ),
            kinds={
                **_UNIT_KINDS,
                "buyer_name": "text",
                "contract_number": "number",
                "password": "number",
            },
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "contract_number": "YS2026000123",
                "password": "12345678",
            },
            wechat=WeChatFields(
                "pages/contract/detail",
                {"thing1": "estate", "character_string2": "contract_number", "thing3": "room"},
            ),
        ),
        Template(
            key="down_payment_arrived",
            title="预售款到账",
            params=DownPaymentArrived,
            # Seed 002, word for word; business_no is the 网签业务宗号, not the contract number.
            sms=(
                "尊敬的{buyer_name}，您购买的{estate}，{building}，{room}室首付款"
                "{amount_yuan}元已到预售资金监管账户，网签业务宗号：{business_no}。"
            ),
            kinds={
                **_UNIT_KINDS,
                "buyer_name": "text",
                "amount_yuan": "amount",
                "business_no": "number",
            },
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "amount_fen": 30000000,
                "business_no": "YW202600000123",
            },
            wechat=WeChatFields(
                "pages/payments/list",
                {"thing1": "estate", "amount2": "amount_yuan", "character_string3": "business_no"},
            ),
        ),
        Template(
            key="refund_completed",
            title="退款完成",
            params=RefundCompleted,
            sms=(
                "您购买的{estate}，{building}，{room}室（买卖合同编号：{contract_number}）"
                "的已缴款项{amount_yuan}元已从预售资金监管账户退回，请注意查收。"
            ),
            kinds={**_UNIT_KINDS, "contract_number": "number", "amount_yuan": "amount"},
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123", "amount_fen": 30000000},
        ),
        Template(
            key="contract_cancelled",
            title="商品房退房",
            params=ContractCancelled,
            # Seed 002, word for word.
            sms=(
                "您购买的{estate}，{building}，{room}室商品房（买卖合同编号为：{contract_number}），"
                "已经成功退房。"
            ),
            kinds={**_UNIT_KINDS, "contract_number": "number"},
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123"},
        ),
        Template(
            key="deposit_arrived",
            title="定金到账",
            params=DownPaymentArrived,
            # The seed's down-payment text, of the same shape for the deposit (定金).
            sms=(
                "尊敬的{buyer_name}，您购买的{estate}，{building}，{room}室定金"
                "{amount_yuan}元已到预售资金监管账户，网签业务宗号：{business_no}。"
            ),
            kinds={
                **_UNIT_KINDS,
                "buyer_name": "text",
                "amount_yuan": "amount",
                "business_no": "number",
            },
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "amount_fen": 2000000,
                "business_no": "YW202600000123",
            },
            wechat=WeChatFields(
                "pages/payments/list",
                {"thing1": "estate", "amount2": "amount_yuan", "character_string3": "business_no"},
            ),
        ),
        Template(
            key="contract_filed",
            title="合同备案",
            params=ContractFiled,
            sms=(
                "您购买的{estate}，{building}，{room}室商品房买卖合同（合同编号：{contract_number}）"
                "已完成备案，备案号：{filing_number}。"
            ),
            kinds={**_UNIT_KINDS, "contract_number": "number", "filing_number": "number"},
            sample={
                **_UNIT_SAMPLE,
                "contract_number": "YS2026000123",
                "filing_number": "BA202600000001",
            },
        ),
        Template(
            key="filing_rejected",
            title="备案退回",
            params=FilingRejected,
            sms=(
                "您购买的{estate}，{building}，{room}室商品房买卖合同（合同编号：{contract_number}）"
                "备案被主管部门退回，原因：{reason}。开发企业补正后将重新提交。"
            ),
            kinds={**_UNIT_KINDS, "contract_number": "number", "reason": "text"},
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123", "reason": "附件不全"},
        ),
        Template(
            key="cancellation_invitation",
            title="退房签署",
            params=CancellationInvitation,
            sms=(
                "您好，{estate}，{building}，{room}室商品房买卖合同（合同编号：{contract_number}）"
                "已申请解除，请在微信小程序“网签”的“我的签署”中核对解除协议并签署。"
            ),
            kinds={**_UNIT_KINDS, "contract_number": "number"},
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123"},
        ),
        Template(
            key="seal_reminder",
            title="催办盖章",
            params=SealReminder,
            sms=(
                "提醒：{estate}，{building}，{room}室（网签业务宗号：{business_no}）的买受人已全部签署，"
                "合同已等待盖章{days}天，请印章授权人尽快完成合同盖章。"
            ),
            kinds={**_UNIT_KINDS, "business_no": "number", "days": "number"},
            sample={**_UNIT_SAMPLE, "business_no": "YW202600000123", "days": 1},
        ),
        Template(
            key="sign_invitation",
            title="邀请签约",
            params=SignInvitation,
            sms=(
                "您好，{estate}，{building}，{room}室的网签合同已生成，请于{expires_at}前"
                "在微信小程序“网签”的“我的合同”中核对并签署，逾期合同将失效。"
            ),
            kinds={**_UNIT_KINDS, "expires_at": "time"},
            sample=_INVITE_SAMPLE,
            wechat=_SIGN_PAGE,
        ),
        Template(
            key="sign_reminder",
            title="催签提醒",
            params=SignReminder,
            sms=(
                "提醒：{estate}，{building}，{room}室的网签合同尚待您签署，将于{expires_at}失效，"
                "请尽快在微信小程序“网签”中完成签署。"
            ),
            kinds={**_UNIT_KINDS, "expires_at": "time"},
            sample=_INVITE_SAMPLE,
            wechat=_SIGN_PAGE,
        ),
        _code_template("one_time_code", "登录验证码", "登录网签"),
        _code_template("sign_code", "签署合同验证码", "签署网签合同"),
        _code_template("seal_code", "合同盖章验证码", "为网签合同盖章"),
        _code_template("cancel_sign_code", "签署解除协议验证码", "签署网签合同的解除（注销）协议"),
        _code_template("password_code", "查看合同密码验证码", "查看网签合同的合同密码"),
    ]
}

_CONTRACT_SAMPLE = {**_UNIT_SAMPLE, "contract_number": "CL2026000123"}
_CONTRACT_KINDS: dict[str, VariableKind] = {**_UNIT_KINDS, "contract_number": "number"}

# Resale (存量房) parties are sellers and buyers alike: no "您购买的", no 预售 account.
TEMPLATES.update(
    {
        t.key: t
        for t in [
            Template(
                key="resale_contract_signed",
                title="存量房合同签约",
                params=ContractSigned,
                sms=(
                    "尊敬的{buyer_name}，{estate}，{building}，{room}室存量房买卖合同已签约，"
                    "合同编号为：{contract_number}，合同密码为{password}。请妥善保管。"
                ),
                kinds={**_CONTRACT_KINDS, "buyer_name": "text", "password": "number"},
                sample={**_CONTRACT_SAMPLE, "buyer_name": "张三", "password": "12345678"},
            ),
            Template(
                key="resale_funds_arrived",
                title="交易资金到账",
                params=DownPaymentArrived,
                sms=(
                    "尊敬的{buyer_name}，{estate}，{building}，{room}室交易资金"
                    "{amount_yuan}元已到存量房交易资金监管账户，网签业务宗号：{business_no}。"
                ),
                kinds={
                    **_UNIT_KINDS,
                    "buyer_name": "text",
                    "amount_yuan": "amount",
                    "business_no": "number",
                },
                sample={
                    **_UNIT_SAMPLE,
                    "buyer_name": "张三",
                    "amount_fen": 2000000,
                    "business_no": "YW202600000123",
                },
            ),
            Template(
                key="seller_paid",
                title="交易资金划转",
                params=RefundCompleted,
                sms=(
                    "{estate}，{building}，{room}室（存量房买卖合同编号：{contract_number}）"
                    "已完成转移登记，监管的交易资金{amount_yuan}元已划转至出卖人账户。"
                ),
                kinds={**_CONTRACT_KINDS, "amount_yuan": "amount"},
                sample={**_CONTRACT_SAMPLE, "amount_fen": 30000000},
            ),
            Template(
                key="resale_refund_completed",
                title="交易资金退回",
                params=RefundCompleted,
                sms=(
                    "{estate}，{building}，{room}室（存量房买卖合同编号：{contract_number}）"
                    "监管的交易资金{amount_yuan}元已退回买受人，请注意查收。"
                ),
                kinds={**_CONTRACT_KINDS, "amount_yuan": "amount"},
                sample={**_CONTRACT_SAMPLE, "amount_fen": 30000000},
            ),
            Template(
                key="resale_transferred",
                title="转移登记完成",
                params=ContractCancelled,
                sms=(
                    "{estate}，{building}，{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已完成不动产转移登记。"
                ),
                kinds=_CONTRACT_KINDS,
                sample=_CONTRACT_SAMPLE,
            ),
            Template(
                key="resale_cancellation_invitation",
                title="注销签署",
                params=CancellationInvitation,
                sms=(
                    "您好，{estate}，{building}，{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已申请注销，请在微信小程序“网签”的“我的签署”中核对注销协议并签署。"
                ),
                kinds=_CONTRACT_KINDS,
                sample=_CONTRACT_SAMPLE,
            ),
            Template(
                key="resale_contract_cancelled",
                title="存量房合同注销",
                params=ContractCancelled,
                sms=(
                    "{estate}，{building}，{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已注销。"
                ),
                kinds=_CONTRACT_KINDS,
                sample=_CONTRACT_SAMPLE,
            ),
        ]
    }
)


def sms_variables() -> dict[str, tuple[str, ...]]:
    """Each template's SMS variables in the order they appear (the default order of
    Tencent's positional parameters)."""
    return {key: t.variables for key, t in TEMPLATES.items()}


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    text: str  # the body as the provider will show it, without the signature
    params: dict[str, str]  # the SMS variables, as the provider takes them
    values: dict[str, str] = field(default_factory=dict)  # every parameter as text


def text_values(params: _Params) -> dict[str, str]:
    values = {name: str(value) for name, value in msgspec.structs.asdict(params).items()}
    amount = getattr(params, "amount_fen", None)
    if isinstance(amount, int):
        values["amount_yuan"] = format_fen(amount)
    return values


def _fit(key: str, name: str, kind: VariableKind, value: str) -> str:
    rule = VARIABLE_RULES[kind]
    value = value.strip()
    if rule.truncate and len(value) > rule.max_length:
        value = value[: rule.max_length]
    if not rule.pattern.fullmatch(value) or _LINKISH.search(value):
        # Numbers, amounts and times are named in the delivery log so staff can see what
        # was refused; text (a person's name) is not.
        shown = f"{len(value)} characters" if kind == "text" else repr(value)
        raise VariableError(f"{key}: {name} ({shown}) is not a valid {kind} variable")
    return value


def render(key: str, params: Mapping[str, Any]) -> RenderedMessage:
    template = TEMPLATES.get(key)
    if template is None:
        raise TemplateError(f"unknown template {key!r}")
    try:
        typed = msgspec.convert(dict(params), template.params)
    except msgspec.ValidationError as exc:
        raise TemplateError(f"{key}: {exc}") from None
    values = text_values(typed)
    if any(_ID_NUMBER.search(value) for value in values.values()):
        raise VariableError(f"{key}: refusing to send a full ID number")
    variables = {
        name: _fit(key, name, template.kinds[name], values[name]) for name in template.variables
    }
    text = template.sms.format(**variables)
    if _ID_NUMBER.search(text):
        raise VariableError(f"{key}: refusing to send a full ID number")
    return RenderedMessage(template=key, text=text, params=variables, values=values)


def _provider_rule_problems(template: Template) -> list[str]:
    """The review rules of Alibaba Cloud and Tencent Cloud SMS templates."""
    problems = []
    body = template.sms
    names = template.variables
    if any(mark in body for mark in "【】[]"):
        problems.append("the body holds 【】 or []: the signature comes from SignName")
    if re.search(r"\}\{", body):
        problems.append("two variables touch")
    if len(set(names)) != len(names):
        problems.append("a variable appears twice")
    if _LINKISH.search(_PLACEHOLDER.sub("", body)) and re.search(r"[/.]\{|\}[/.]", body):
        problems.append("a link is built from a variable")
    if any(name in ("link", "url") for name in names):
        problems.append("a link is a variable")
    if set(names) != set(template.kinds):
        problems.append(f"variables {sorted(names)} and kinds {sorted(template.kinds)} differ")
    if not names or len(_PLACEHOLDER.sub("", body)) < 4:
        problems.append("a template of variables only")
    if len(body) > 500:
        problems.append("longer than 500 characters")
    if template.verification and (
        len(names) != 1 or template.kinds.get(names[0]) != "code" or "验证码" not in body
    ):
        problems.append("a verification template has exactly one code variable and says 验证码")
    return problems


def check_templates() -> None:
    """Fail fast at start if any template breaks a provider rule or cannot render from
    its own sample."""
    for key, template in TEMPLATES.items():
        problems = _provider_rule_problems(template)
        if problems:
            raise TemplateError(f"{key}: {'; '.join(problems)}")
        rendered = render(key, template.sample)
        if _PLACEHOLDER.search(rendered.text):
            raise TemplateError(f"{key}: unfilled placeholder in {rendered.text!r}")
        if template.wechat is not None:
            missing = set(template.wechat.data.values()) - set(rendered.values)
            if missing:
                raise TemplateError(f"{key}: WeChat fields name unknown parameters {missing}")
