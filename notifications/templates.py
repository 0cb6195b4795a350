"""Message templates (zh-CN) with typed parameters, for SMS and WeChat subscribe messages.

Each template names its parameters as a msgspec Struct, so a missing or mistyped
parameter is refused before anything is queued. SMS wording follows the city templates
(seed 002, 2.7: 买卖合同签订, 预售款到账, 商品房退房). ``check_templates()`` runs at start:
every template must render from its sample and map its WeChat fields to parameters.

No message may carry a full resident ID number: ``render`` refuses any text that contains
one, whatever the parameters were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

__all__ = [
    "TEMPLATES",
    "RenderedMessage",
    "Template",
    "TemplateError",
    "check_templates",
    "format_fen",
    "render",
]

_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


class TemplateError(ValueError):
    """Unknown template, parameters that do not fit, or a rendered text we must not send."""


def format_fen(amount_fen: int) -> str:
    """12345600 -> "123,456.00" (yuan, as people read amounts)."""
    return f"{Decimal(amount_fen) / 100:,.2f}"


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
    link: str


class SealReminder(Unit):
    business_no: str
    days: int


class SignInvitation(Unit):
    link: str
    expires_at: str  # already formatted in Shanghai time, e.g. "11月24日 24:00"


class SignReminder(Unit):
    link: str
    expires_at: str


class OneTimeCode(_Params):
    code: str
    purpose: str  # 登录, 签署合同, 合同盖章 ...
    minutes: int


@dataclass(frozen=True)
class WeChatTemplate:
    """A subscribe-message template: WeChat data keys mapped to our parameter names."""

    template_id: str
    page: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    params: type[_Params]
    sms: str
    sample: Mapping[str, Any]
    wechat: WeChatTemplate | None = None
    # One-time codes go out at once, ahead of the queue, and never over WeChat.
    urgent: bool = False


_UNIT_SAMPLE = {"estate": "明湖花园", "building": "1栋", "room": "301"}
_LINK_SAMPLE = {**_UNIT_SAMPLE, "link": "https://wq.example/s/A1", "expires_at": "11月24日 24:00"}
_SIGN_PAGE_FIELDS = {"thing1": "estate", "time2": "expires_at"}

TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in [
        Template(
            key="contract_signed",
            title="买卖合同签订",
            params=ContractSigned,
            # Seed 002, word for word (its punctuation too).
            sms=(
                "您好！尊敬的{buyer_name}业主,您购买的{estate}{building}{room}室已签订网签合同，"
                "合同编号为：{contract_number}，合同密码为{password}。"
            ),
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "contract_number": "YS2026000123",
                "password": "12345678",
            },
            wechat=WeChatTemplate(
                "tmpl_contract_signed",
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
                "您好！尊敬的{buyer_name}业主,您购买的{estate}{building}{room}室首付款"
                "[{amount_yuan}元]已到预售资金监管账户,网签业务宗号：{business_no}。"
            ),
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "amount_fen": 30000000,
                "business_no": "YW202600000123",
            },
            wechat=WeChatTemplate(
                "tmpl_payment_arrived",
                "pages/payments/list",
                {"thing1": "estate", "amount2": "amount_yuan", "character_string3": "business_no"},
            ),
        ),
        Template(
            key="refund_completed",
            title="退款完成",
            params=RefundCompleted,
            sms=(
                "您好！您购买的{estate}{building}{room}室（买卖合同编号：{contract_number}）"
                "的已缴款项{amount_yuan}元已从预售资金监管账户退回，请注意查收。"
            ),
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123", "amount_fen": 30000000},
        ),
        Template(
            key="contract_cancelled",
            title="商品房退房",
            params=ContractCancelled,
            # Seed 002, word for word.
            sms=(
                "您好！您购买的{estate}{building}{room}室商品房(买卖合同编号为：{contract_number})，"
                "已经成功退房！"
            ),
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123"},
        ),
        Template(
            key="deposit_arrived",
            title="定金到账",
            params=DownPaymentArrived,
            # The seed's down-payment text, of the same shape for the deposit (定金).
            sms=(
                "您好！尊敬的{buyer_name}业主,您购买的{estate}{building}{room}室定金"
                "[{amount_yuan}元]已到预售资金监管账户,网签业务宗号：{business_no}。"
            ),
            sample={
                **_UNIT_SAMPLE,
                "buyer_name": "张三",
                "amount_fen": 2000000,
                "business_no": "YW202600000123",
            },
            wechat=WeChatTemplate(
                "tmpl_payment_arrived",
                "pages/payments/list",
                {"thing1": "estate", "amount2": "amount_yuan", "character_string3": "business_no"},
            ),
        ),
        Template(
            key="contract_filed",
            title="合同备案",
            params=ContractFiled,
            sms=(
                "您好！您购买的{estate}{building}{room}室商品房买卖合同（合同编号：{contract_number}）"
                "已完成备案，备案号：{filing_number}。"
            ),
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
                "您好！您购买的{estate}{building}{room}室商品房买卖合同（合同编号：{contract_number}）"
                "备案被主管部门退回，原因：{reason}。开发企业补正后将重新提交。"
            ),
            sample={**_UNIT_SAMPLE, "contract_number": "YS2026000123", "reason": "附件不全"},
        ),
        Template(
            key="cancellation_invitation",
            title="退房签署",
            params=CancellationInvitation,
            sms=(
                "您好！{estate}{building}{room}室商品房买卖合同（合同编号：{contract_number}）"
                "已申请解除，请打开 {link} 核对解除协议并签署。"
            ),
            sample={
                **_UNIT_SAMPLE,
                "contract_number": "YS2026000123",
                "link": "https://wq.example/s/B2",
            },
        ),
        Template(
            key="seal_reminder",
            title="催办盖章",
            params=SealReminder,
            sms=(
                "提醒：{estate}{building}{room}室（网签业务宗号：{business_no}）的买受人已全部签署，"
                "合同已等待盖章{days}天，请印章授权人尽快完成合同盖章。"
            ),
            sample={**_UNIT_SAMPLE, "business_no": "YW202600000123", "days": 1},
        ),
        Template(
            key="sign_invitation",
            title="邀请签约",
            params=SignInvitation,
            sms=(
                "您好！{estate}{building}{room}室的网签合同已生成，请于{expires_at}前"
                "打开 {link} 核对并签署，逾期合同将失效。"
            ),
            sample=_LINK_SAMPLE,
            wechat=WeChatTemplate("tmpl_sign_invitation", "pages/contract/sign", _SIGN_PAGE_FIELDS),
        ),
        Template(
            key="sign_reminder",
            title="催签提醒",
            params=SignReminder,
            sms=(
                "提醒：{estate}{building}{room}室的网签合同尚待您签署，将于{expires_at}失效，"
                "请尽快打开 {link} 完成签署。"
            ),
            sample=_LINK_SAMPLE,
            wechat=WeChatTemplate("tmpl_sign_reminder", "pages/contract/sign", _SIGN_PAGE_FIELDS),
        ),
        Template(
            key="one_time_code",
            title="验证码",
            params=OneTimeCode,
            sms="【网签】您的{purpose}验证码为{code}，{minutes}分钟内有效。请勿将验证码告诉他人。",
            sample={"code": "123456", "purpose": "登录", "minutes": 5},
            urgent=True,
        ),
    ]
}

_CONTRACT_SAMPLE = {**_UNIT_SAMPLE, "contract_number": "CL2026000123"}

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
                    "您好！尊敬的{buyer_name},{estate}{building}{room}室存量房买卖合同已签约，"
                    "合同编号为：{contract_number}，合同密码为{password}。"
                ),
                sample={**_CONTRACT_SAMPLE, "buyer_name": "张三", "password": "12345678"},
            ),
            Template(
                key="resale_funds_arrived",
                title="交易资金到账",
                params=DownPaymentArrived,
                sms=(
                    "您好！尊敬的{buyer_name},{estate}{building}{room}室交易资金"
                    "[{amount_yuan}元]已到存量房交易资金监管账户,网签业务宗号：{business_no}。"
                ),
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
                    "您好！{estate}{building}{room}室（存量房买卖合同编号：{contract_number}）"
                    "已完成转移登记，监管的交易资金{amount_yuan}元已划转至出卖人账户。"
                ),
                sample={**_CONTRACT_SAMPLE, "amount_fen": 30000000},
            ),
            Template(
                key="resale_refund_completed",
                title="交易资金退回",
                params=RefundCompleted,
                sms=(
                    "您好！{estate}{building}{room}室（存量房买卖合同编号：{contract_number}）"
                    "监管的交易资金{amount_yuan}元已退回买受人，请注意查收。"
                ),
                sample={**_CONTRACT_SAMPLE, "amount_fen": 30000000},
            ),
            Template(
                key="resale_transferred",
                title="转移登记完成",
                params=ContractCancelled,
                sms=(
                    "您好！{estate}{building}{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已完成不动产转移登记。"
                ),
                sample=_CONTRACT_SAMPLE,
            ),
            Template(
                key="resale_cancellation_invitation",
                title="注销签署",
                params=CancellationInvitation,
                sms=(
                    "您好！{estate}{building}{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已申请注销，请打开 {link} 核对注销协议并签署。"
                ),
                sample={**_CONTRACT_SAMPLE, "link": "https://wq.example/s/B2"},
            ),
            Template(
                key="resale_contract_cancelled",
                title="存量房合同注销",
                params=ContractCancelled,
                sms=(
                    "您好！{estate}{building}{room}室存量房买卖合同（合同编号：{contract_number}）"
                    "已注销。"
                ),
                sample=_CONTRACT_SAMPLE,
            ),
        ]
    }
)


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    text: str
    params: dict[str, str]  # every value as text, as gateways take them
    wechat_data: dict[str, dict[str, str]] | None


def _text_values(params: _Params) -> dict[str, str]:
    values = {name: str(value) for name, value in msgspec.structs.asdict(params).items()}
    amount = getattr(params, "amount_fen", None)
    if isinstance(amount, int):
        values["amount_yuan"] = format_fen(amount)
    return values


def render(key: str, params: Mapping[str, Any]) -> RenderedMessage:
    template = TEMPLATES.get(key)
    if template is None:
        raise TemplateError(f"unknown template {key!r}")
    try:
        typed = msgspec.convert(dict(params), template.params)
    except msgspec.ValidationError as exc:
        raise TemplateError(f"{key}: {exc}") from None
    values = _text_values(typed)
    text = template.sms.format(**values)
    if _ID_NUMBER.search(text):
        raise TemplateError(f"{key}: refusing to send a full ID number")
    wechat_data = None
    if template.wechat is not None:
        wechat_data = {k: {"value": values[name]} for k, name in template.wechat.data.items()}
    return RenderedMessage(template=key, text=text, params=values, wechat_data=wechat_data)


def check_templates() -> None:
    """Fail fast at start if any template cannot render from its own sample."""
    for key, template in TEMPLATES.items():
        rendered = render(key, template.sample)
        if _PLACEHOLDER.search(rendered.text):
            raise TemplateError(f"{key}: unfilled placeholder in {rendered.text!r}")
        if template.wechat is not None:
            missing = set(template.wechat.data.values()) - set(rendered.params)
            if missing:
                raise TemplateError(f"{key}: WeChat fields name unknown parameters {missing}")
