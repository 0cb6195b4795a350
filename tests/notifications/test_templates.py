"""Every template renders from typed parameters, refuses bad ones, never leaks an ID number."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from notifications.delivery import RetryPolicy
from notifications.templates import TEMPLATES, TemplateError, check_templates, format_fen, render


def test_all_templates_pass_the_start_check() -> None:
    check_templates()


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_each_template_renders_every_parameter(key: str) -> None:
    template = TEMPLATES[key]
    rendered = render(key, template.sample)
    for name, value in template.sample.items():
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
    # A masked one is fine.
    assert (
        "1101**********002X"
        in render("contract_signed", {**sample, "buyer_name": "张三 1101**********002X"}).text
    )


def test_seed_wording_of_the_signed_contract_message() -> None:
    text = render("contract_signed", TEMPLATES["contract_signed"].sample).text
    assert "已签订网签合同，合同编号为：YS2026000123，合同密码为12345678" in text


def test_amounts_are_shown_in_yuan() -> None:
    assert format_fen(30000000) == "300,000.00"
    assert format_fen(1) == "0.01"
    text = render("down_payment_arrived", TEMPLATES["down_payment_arrived"].sample).text
    assert "首付款[300,000.00元]已到预售资金监管账户" in text


def test_retry_delays_grow_with_jitter_and_are_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5))
    rng = random.Random(7)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 300)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(
            timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays
        )
        assert len(set(delays)) > 1  # jittered, so workers do not retry in lockstep
