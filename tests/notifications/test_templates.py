"""Every template renders from typed parameters, refuses bad ones, never leaks an ID number."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from notifications.delivery import RetryPolicy
from notifications.templates import (
    TEMPLATES,
    OneTimeCode,
    Template,
    TemplateError,
    _provider_rule_problems,
    check_templates,
    format_fen,
    render,
)
from notifications.wechat_templates import parse_wechat_templates, wechat_value


def test_all_templates_pass_the_start_check() -> None:
    check_templates()


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_each_template_renders_every_parameter(key: str) -> None:
    template = TEMPLATES[key]
    rendered = render(key, template.sample)
    for name, value in template.sample.items():
        if name not in template.variables and name != "amount_fen":
            continue  # kept for callers, not in the wording (a code's purpose, a link)
        shown = format_fen(value) if name == "amount_fen" else str(value)
        assert shown in rendered.text, (name, rendered.text)
    assert "{" not in rendered.text


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_each_template_refuses_a_missing_parameter(key: str) -> None:
    sample = dict(TEMPLATES[key].sample)
    sample.pop(next(iter(sample)))
    with pytest.raises(TemplateError, match="required"):
        render(key, sample)


def test_wrong_types_unknown_parameters_and_templates_are_refused() -> None:
    sample = dict(TEMPLATES["down_payment_arrived"].sample)
    with pytest.raises(TemplateError):
        render("down_payment_arrived", {**sample, "amount_fen": "三十万"})
    with pytest.raises(TemplateError):
        render("down_payment_arrived", {**sample, "id_number": "x"})
    with pytest.raises(TemplateError, match="unknown template"):
        render("lottery_win", {})


def test_a_full_id_number_is_never_sent() -> None:
    sample = dict(TEMPLATES["contract_signed"].sample)
    with pytest.raises(TemplateError, match="ID number"):
        render("contract_signed", {**sample, "buyer_name": "张三 11010519491231002X"})
    # A masked one is fine (as the text variable it is, within 20 characters).
    assert "1101****002X" in render("contract_signed", {**sample, "buyer_name": "张三 1101****002X"}).text


def test_seed_wording_of_the_signed_contract_message() -> None:
    text = render("contract_signed", TEMPLATES["contract_signed"].sample).text
    assert "已签订网签合同，合同编号为：YS2026000123，合同密码为12345678" in text


def test_amounts_are_shown_in_yuan() -> None:
    assert format_fen(30000000) == "300000.00"
    assert format_fen(1) == "0.01"
    text = render("down_payment_arrived", TEMPLATES["down_payment_arrived"].sample).text
    assert "首付款300000.00元已到预售资金监管账户" in text


def test_retry_delays_grow_with_jitter_and_are_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5))
    rng = random.Random(7)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 300)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(
            timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays
        )
        assert len(set(delays)) > 1  # jittered, so workers do not retry in lockstep


def _template(sms: str, kinds: dict[str, str], **kw: object) -> Template:
    return Template(key="t", title="t", params=OneTimeCode, sms=sms, kinds=kinds,  # type: ignore[arg-type]
                    sample={"code": "123456"}, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sms", "kinds", "verification", "problem"),
    [
        ("【网签】您的验证码为{code}，5分钟内有效。", {"code": "code"}, True, "【】"),
        ("首付款[{code}]已到账，请查收。", {"code": "code"}, False, "【】"),
        ("请打开 https://wq.example/s/{code} 签署合同。", {"code": "number"}, False, "link"),
        ("请打开{link}签署合同，谢谢。", {"link": "text"}, False, "link is a variable"),
        ("您购买的{estate}{room}室已签约。", {"estate": "text", "room": "text"}, False, "touch"),
        ("{code}", {"code": "code"}, False, "variables only"),
        ("验证码{code}，用于{purpose}。", {"code": "code", "purpose": "text"}, True, "one code"),
        ("您的动态码为{code}。", {"code": "code"}, True, "验证码"),
        ("合同{code}已签，编号{code}。", {"code": "number"}, False, "twice"),
        ("合同{code}已签订，请查收。", {}, False, "kinds"),
    ],
)
def test_templates_that_break_a_provider_rule_are_refused(
    sms: str, kinds: dict[str, str], verification: bool, problem: str
) -> None:
    problems = _provider_rule_problems(_template(sms, kinds, verification=verification))
    assert any(problem in p for p in problems), problems


def test_variables_keep_to_their_kind() -> None:
    sample = dict(TEMPLATES["contract_signed"].sample)
    long_name = "示范市明湖区明湖花园二期东区北苑小区"  # 19 characters: fits
    assert long_name in render("contract_signed", {**sample, "estate": long_name}).text
    # Text is shortened to the providers' limit rather than refused.
    longer = render("contract_signed", {**sample, "estate": "甲" * 30}).params["estate"]
    assert longer == "甲" * 20
    for field, value in (("contract_number", "YS-2026/1"), ("password", "1" * 21),
                         ("estate", "www.example.com")):
        with pytest.raises(TemplateError):
            render("contract_signed", {**sample, field: value})
    with pytest.raises(TemplateError):
        render("one_time_code", {"code": "12ab"})


def test_wechat_values_follow_wechats_types() -> None:
    assert wechat_value("thing1", "甲" * 25) == "甲" * 20
    assert wechat_value("amount2", "300000.00") == "¥300000.00"
    assert wechat_value("time2", "11月24日 24:00") == "11月24日 23:59"
    assert wechat_value("character_string2", "YS2026000123") == "YS2026000123"
    for key, value in (("amount2", "300,000.00"), ("time2", "下午三点"),
                       ("character_string2", "x" * 33)):
        with pytest.raises(TemplateError):
            wechat_value(key, value)


def test_wechat_templates_come_from_settings() -> None:
    configured = parse_wechat_templates(
        '{"contract_signed": {"id": "AbC-123", "data": {"thing4": "estate", '
        '"character_string7": "contract_number"}}, "down_payment_arrived": {"id": "x9"}}'
    )
    assert configured["contract_signed"].template_id == "AbC-123"
    assert dict(configured["contract_signed"].data) == {
        "thing4": "estate", "character_string7": "contract_number"}
    assert configured["down_payment_arrived"].data == TEMPLATES["down_payment_arrived"].wechat.data  # type: ignore[union-attr]
    for bad in ('{"one_time_code": {"id": "x"}}', '{"contract_signed": {"id": "x", '
                '"data": {"thing1": "password_hash"}}}', '{"contract_signed": {"id": "x", '
                '"data": {"colour1": "estate"}}}', "[]"):
        with pytest.raises(ValueError):
            parse_wechat_templates(bad)
