"""The resale journey (存量房网签, seed 004 sections 2 and 4) in two phone-sized Chromium
contexts: the seller 王五 checks the title (a wrong check code first), fills the contract
for 张三 and shows the QR; 张三 photographs it, both pass the face check and sign (the
seller's face check has gone stale and is done again on the way); the seller submits and
both see 已签约 with the number; then 张三 starts the online cancellation, both sign it and
he submits it: both see 已注销. Then the seller's other paths: a seized title, an order
withdrawn before signing (注销电子合同订单), and the check code locked for the day.

What is asserted is what a person sees: the Chinese on the screen. The API is used only to
play the regulator (a mortgage, a seizure) and to confirm what the page sent."""

from __future__ import annotations

import re
import sqlite3
from datetime import date, timedelta
from typing import Any

from api.core.keys import ServiceKeys
from api.demo import DEMO_RESALE_ACCOUNT_NUMBER
from api.settings import Settings
from tests.browser import journey
from tests.browser.conftest import Server
from tests.browser.qr_photos import Shot, photograph

# Every Chinese word on these pages; a raw code (``awaiting_submit``, ``sign_code_sent``)
# on the screen is a missing label.
RAW_CODE = re.compile(r"[a-z]+_[a-z_]*[a-z]")


def _expect(page: Any) -> Any:
    from playwright.sync_api import expect

    return expect(page)


# A signing act typesets or extends the contract PDF and time-stamps it (seconds on a
# busy CI machine): what follows one waits longer than Playwright's 5 s default.
SIGNING_ACT_MS = 30_000


def _heading(page: Any, name: str) -> Any:
    return page.locator("main").get_by_role("heading", name=name, level=2)


def _face_check(page: Any) -> None:
    """On the face check page: the provider's page, the check passes, back by itself."""
    journey.face_check(page)


def _log_in(page: Any, server: Server, person: dict[str, Any], start: str) -> None:
    """Open ``start`` (a page of the mini program), log in with WeChat (the mock's user
    key is the phone number) and bind the phone if this WeChat user has none yet."""
    expect = _expect
    page.goto(f"{server.base}/miniapp/{start}")
    expect(_heading(page, "微信授权登录")).to_be_visible()
    page.fill("#wx-user", person["phone"])
    page.get_by_role("button", name="微信一键登录").click()
    binding = _heading(page, "绑定手机号")
    expect(binding.or_(page.locator("#who", has_text="*"))).to_be_visible()
    if binding.is_visible():
        page.fill("#phone", person["phone"])
        before = server.seen(person["phone"])
        page.get_by_role("button", name="获取验证码").click()
        expect(page.get_by_text("验证码已发送")).to_be_visible()
        page.fill("#code", server.next_code(person["phone"], before))
        page.get_by_role("button", name="绑定").click()


def _real_name_and_face(page: Any, person: dict[str, Any]) -> None:
    journey.real_name(page, person)
    _face_check(page)


def _seller_ready(page: Any, server: Server, seller: dict[str, Any]) -> None:
    """The seller opens 我要卖房 and, the first time, is sent through real-name and the face
    check and brought back to it."""
    expect = _expect
    _log_in(page, server, seller, "#/sell")
    expect(_heading(page, "签订买卖合同（线上）")).to_be_visible()
    verify_first = page.locator("#verify-first")
    expect(verify_first.or_(page.locator("#to-title-check"))).to_be_visible()
    if verify_first.is_visible():
        expect(page.locator("#need-face")).to_contain_text("卖房须先完成实名认证和人脸核身")
        verify_first.click()
        _real_name_and_face(page, seller)
        expect(_heading(page, "签订买卖合同（线上）")).to_be_visible()  # back to 我要卖房
    page.get_by_role("link", name="开始房源验证").click()
    expect(_heading(page, "房源验证")).to_be_visible()


def _check_title(page: Any, certificate_no: str, code: str) -> None:
    page.locator("#title-msg").evaluate("box => { box.textContent = ''; }")
    page.fill("#certificate-no", certificate_no)
    page.fill("#check-code", code)
    page.get_by_role("button", name="查询房源").click()


def _fill_contract(page: Any, buyer: dict[str, Any], *, supervised: bool) -> None:
    """The contract form, as a seller types it: yuan with commas and cents."""
    expect = _expect
    expect(_heading(page, "买受人（乙方）")).to_be_visible()
    page.fill("#buyer-name-0", buyer["name"])
    page.fill("#buyer-id-number-0", buyer["id_number"])
    page.fill("#buyer-phone-0", buyer["phone"])
    page.fill("#price", "1,860,000.29")
    expect(page.locator("#price-preview")).to_have_text("成交总价：1,860,000.29 元")
    page.select_option("#payment-method", "commercial_loan")
    page.fill("#deposit", "20000")
    page.fill("#down-payment", "520,000.1")
    page.fill("#delivery-date", (date.today() + timedelta(days=120)).isoformat())
    page.select_option("#taxes", "buyer")
    # 是否选择监管交易资金: 是 unless the seller says otherwise, as the seed recommends.
    expect(page.get_by_label("是（建议）")).to_be_checked()
    if supervised:
        page.fill("#bank-name", "示范银行老城支行")
        page.get_by_role("button", name="保存合同").click()  # the account forgotten
        expect(page.locator("#resale-msg")).to_have_text("收款账号须为 8–30 位数字。")
        page.fill("#account-number", "6217 0000 1234 5678")
    else:
        page.get_by_label("否", exact=True).check()
        expect(page.locator("#unsupervised-note")).to_contain_text("自行交割")
        expect(page.locator("#bank-name")).to_be_hidden()
    page.get_by_role("button", name="保存合同").click()


def _sign_contract(page: Any, server: Server, person: dict[str, Any]) -> None:
    expect = _expect
    journey.to_sign(page)
    before = server.seen(person["phone"])
    page.get_by_role("button", name="获取短信验证码").click()
    expect(page.get_by_text("验证码已发送至")).to_be_visible()
    journey.sign_with_code(page, server.next_code(person["phone"], before), timeout=SIGNING_ACT_MS)
    expect(_heading(page, "您已完成签署")).to_be_visible(timeout=SIGNING_ACT_MS)


def _sign_cancellation(page: Any, server: Server, person: dict[str, Any]) -> None:
    expect = _expect
    before = server.seen(person["phone"])
    page.get_by_role("button", name="获取短信验证码").click()
    expect(page.get_by_text("验证码已发送至")).to_be_visible()
    page.fill("#cancel-code", server.next_code(person["phone"], before))
    page.get_by_role("button", name="确认签署注销协议").click()
    expect(page.locator("#cancel-sign")).to_have_count(0)


def _face_check_ages(server: Server, phone: str) -> None:
    """Ten minutes pass for one citizen's face check: a real server's clock cannot be
    moved, so the time of the last check is set into the past in its database."""
    keys = ServiceKeys.from_master(Settings(data_dir=server.data_dir).master_secret())
    with sqlite3.connect(server.data_dir / "wangqian.db") as db:
        db.execute("PRAGMA busy_timeout=10000")
        changed = db.execute(
            "UPDATE citizens SET face_verified_at = '2000-01-01 00:00:00.000000'"
            " WHERE phone_index = ?",
            (keys.phone_index(phone),),
        ).rowcount
    assert changed == 1


def _restrict(server: Server, kind: str, authority: str) -> dict[str, Any]:
    """The regulator records a restriction on the resale flat."""
    regulator = server.staff_login(server.role("regulator")["phone"])
    unit = server.world["resale_title"]["unit_id"]
    added = server.http.post(
        f"/api/v1/register/units/{unit}/restrictions",
        json={"kind": kind, "authority": authority, "document_no": f"{kind}-2026-001"},
        headers=regulator,
    )
    assert added.status_code == 201, added.text
    return added.json()


def _bearer_of(page: Any) -> dict[str, str]:
    token = page.evaluate("sessionStorage.getItem('wq.token')")
    return {"Authorization": f"Bearer {token}"}


def test_sell_sign_submit_then_cancel_online(server: Server, phone_page: Any) -> None:
    expect = _expect
    wang, zhang = server.person("王五"), server.person("张三")
    title = server.world["resale_title"]
    _restrict(server, "mortgage", "示范银行老城支行")  # 已抵押: may be sold, must be said

    # 卖房 → 房源验证: a wrong check code first (the tries left), then the right one.
    seller = phone_page()
    _seller_ready(seller, server, wang)
    expect(seller.locator("main")).to_contain_text(wang["name"])  # the verified owner
    _check_title(seller, title["certificate_no"], "000000")
    expect(seller.locator("#title-wrong")).to_have_text(
        "不动产权证号或校验码不正确，请核对产权证书。还可尝试 4 次。"
    )
    _check_title(seller, title["certificate_no"], title["check_code"])
    expect(seller.locator("#title-msg")).to_contain_text("房源验证通过")
    journey.audit(seller, "title-check")
    facts = seller.locator("#title-facts")
    expect(facts.locator("#title-mortgaged")).to_contain_text("已抵押")
    expect(facts).to_contain_text("501")
    expect(facts).to_contain_text("㎡")
    expect(seller.locator("#title-owners")).to_contain_text("王*")
    expect(seller.locator("#title-owners")).to_contain_text("本人")
    expect(facts).not_to_contain_text(wang["id_number"])  # the owners only masked
    expect(facts).not_to_contain_text(wang["name"])

    # 填写合同, then 生成电子合同订单: the QR on the seller's phone.
    seller.get_by_role("link", name="签订合同").click()
    expect(_heading(seller, "买受人（乙方）")).to_be_visible()
    journey.audit(seller, "contract-form")
    _fill_contract(seller, zhang, supervised=True)
    expect(_heading(seller, "存量房买卖合同订单")).to_be_visible()
    expect(seller.locator("[data-status=draft]")).to_have_text("草稿")
    seller.get_by_role("button", name="生成电子合同订单").click()
    expect(seller.locator("#signing-state")).to_have_text("签名状态：已创建订单，待签字")
    expect(seller.locator("[data-status=awaiting_signatures]").first).to_have_text("待签署")
    qr = seller.get_by_role("img", name="签约二维码")
    expect(qr).to_be_visible()
    journey.audit(seller, "resale-order")
    order_id = seller.url.rsplit("/", 1)[1]
    # The page sent exact fen: no float on the way from "1,860,000.29" and "520,000.1".
    sent = server.http.get(f"/api/v1/contracts/{order_id}", headers=_bearer_of(seller)).json()
    assert (sent["price_fen"], sent["deposit_fen"], sent["down_payment_fen"]) == (
        186_000_029,
        2_000_000,
        52_000_010,
    )
    assert sent["resale"]["taxes_borne_by"] == "buyer" and sent["resale"]["funds_supervised"]
    screen = qr.screenshot()  # what the buyer's camera sees on the seller's phone

    # The buyer, on his own phone: verified, he photographs the seller's screen.
    buyer = phone_page()
    _log_in(buyer, server, zhang, "")
    expect(_heading(buyer, "签约步骤")).to_be_visible()
    buyer.get_by_role("link", name="2. 个人信息授权").click()
    _real_name_and_face(buyer, zhang)
    expect(_heading(buyer, "签约步骤")).to_be_visible()
    buyer.get_by_role("link", name="5. 扫码签约").click()
    photo = photograph(screen, Shot(size=1400, coverage=0.3, rotation=-15, tilt=15, seed=13))
    buyer.locator("#scan-photo").set_input_files(
        files=[{"name": "qr.jpg", "mimeType": "image/jpeg", "buffer": photo.data}]
    )
    # The resale contract, read before the sign button: the title, 已抵押, taxes, the
    # supervision and both accounts.
    expect(_heading(buyer, "存量房买卖合同")).to_be_visible()
    terms = buyer.locator("#resale-terms")
    expect(terms.locator("#certificate-no")).to_have_text(title["certificate_no"])
    expect(terms.locator("#mortgaged")).to_contain_text("已抵押")
    expect(terms.locator("#taxes")).to_have_text("全部由买受人承担")
    expect(terms.locator("#supervision")).to_contain_text("是")
    expect(terms.locator("#supervised-account")).to_contain_text(DEMO_RESALE_ACCOUNT_NUMBER)
    expect(terms.locator("#seller-account")).to_contain_text("5678")
    expect(terms.locator("#seller-account")).to_contain_text("示范银行老城支行")
    expect(buyer.locator("main")).not_to_contain_text("6217000012345678")
    expect(buyer.locator("main")).to_contain_text("1,860,000.29 元")
    expect(buyer.locator("main")).to_contain_text("出卖人：王五")
    journey.audit(buyer, "resale-contract")
    sign_link = buyer.locator("#to-sign")
    assert terms.bounding_box()["y"] < sign_link.bounding_box()["y"]
    _sign_contract(buyer, server, zhang)
    expect(buyer.locator("main")).to_contain_text("等待其他签约方签署")

    # The seller signs too; his face check is more than ten minutes old by now: the page
    # takes him through it again and back to signing.
    _face_check_ages(server, wang["phone"])
    seller.get_by_role("button", name="刷新签字状态").click()
    expect(seller.locator("li", has_text="买受人：张三")).to_contain_text("已签署")
    expect(seller.locator("li", has_text="出卖人：王五")).to_contain_text("未签署")
    seller.get_by_role("link", name="阅读合同并签署（出卖人）").click()
    journey.to_sign(seller)
    seller.get_by_role("button", name="获取短信验证码").click()
    expect(seller.locator("#face-why")).to_contain_text("10 分钟内完成人脸核身")
    _face_check(seller)
    expect(_heading(seller, "短信验证签署")).to_be_visible()  # back where he was
    before = server.seen(wang["phone"])
    seller.get_by_role("button", name="获取短信验证码").click()
    expect(seller.get_by_text("验证码已发送至")).to_be_visible()
    journey.sign_with_code(seller, server.next_code(wang["phone"], before), timeout=SIGNING_ACT_MS)
    expect(_heading(seller, "您已完成签署")).to_be_visible(timeout=SIGNING_ACT_MS)
    expect(seller.locator("main")).to_contain_text("订单已经完成签字，等待出卖人提交")

    # 提交: 已签约, the number, and the password shown once.
    seller.get_by_role("link", name="去提交").click()
    expect(seller.locator("#signing-state")).to_have_text("签名状态：订单已经完成签字")
    seller.get_by_role("button", name="提交", exact=True).click()
    expect(_heading(seller, "提交成功，合同已签约")).to_be_visible(timeout=SIGNING_ACT_MS)
    expect(seller.locator("[data-status=signed]").first).to_have_text("已签约")
    number = seller.locator("#contract-number").inner_text()
    assert re.fullmatch(r"CL\d{4}\d+", number), number
    password = seller.locator("#contract-password").inner_text()
    assert re.fullmatch(r"\d{8}", password), password

    buyer.get_by_role("button", name="刷新状态").click()
    expect(_heading(buyer, "签约完成")).to_be_visible()
    expect(buyer.locator("[data-status=signed]").first).to_have_text("已签约")
    expect(buyer.locator("#contract-number")).to_have_text(number)

    # Anyone with the number and the password sees a genuine contract and its parties.
    public = phone_page()
    public.goto(f"{server.base}/miniapp/#/verify")
    public.fill("#number", number)
    public.fill("#password", password)
    public.get_by_role("button", name="查询").click()
    expect(public.locator("#genuine")).to_have_text("合同真实有效")
    answer = public.locator("#verify-msg")
    expect(answer).to_contain_text("已签约")
    expect(answer).to_contain_text("出卖人王*")
    expect(answer).to_contain_text("买受人张*")

    # 存量房合同注销线上: the buyer starts it with a reason and signs first.
    buyer.get_by_role("link", name="查看合同与进度").click()
    buyer.get_by_role("link", name="申请注销网签合同").click()
    buyer.fill("#cancel-reason", "买方贷款未获批，双方协商注销")
    buyer.get_by_role("button", name="提交注销申请").click()
    expect(_heading(buyer, "存量房买卖合同注销协议")).to_be_visible()
    expect(buyer.locator("[data-cancel-status]")).to_have_text("待买卖双方签署")
    expect(buyer.get_by_role("img", name="注销协议签署二维码")).to_be_visible()
    expect(buyer.get_by_role("button", name="撤回注销申请")).to_be_visible()
    journey.audit(buyer, "cancellation")
    _sign_cancellation(buyer, server, zhang)

    # The seller finds it in 我的签署 (no QR needed) and signs it.
    seller.get_by_role("link", name="首页").click()
    seller.get_by_role("link", name=re.compile("我的签署")).click()
    tasks = seller.locator("#signature-list")
    expect(tasks).to_contain_text("存量房买卖合同注销协议")
    expect(tasks).to_contain_text("出卖人")
    expect(tasks).to_contain_text(number)
    journey.audit(seller, "my-signatures")
    tasks.get_by_role("link").first.click()
    expect(_heading(seller, "存量房买卖合同注销协议")).to_be_visible()
    expect(seller.locator("main")).to_contain_text("买方贷款未获批，双方协商注销")
    _sign_cancellation(seller, server, wang)
    expect(seller.locator("[data-cancel-status]")).to_have_text("已完成签字·待发起方提交")
    expect(seller.locator("#cancel-submit-card")).to_contain_text("等待发起方（张*）提交")
    expect(seller.get_by_role("button", name="提交注销")).to_have_count(0)

    # Only its starter submits: 已注销 for both.
    buyer.reload()
    expect(buyer.locator("[data-cancel-status]")).to_have_text("已完成签字·待发起方提交")
    buyer.get_by_role("button", name="提交注销").click()
    expect(buyer.locator("[data-cancel-status]")).to_have_text("已注销")
    expect(buyer.locator("#cancel-done")).to_have_text("合同已注销。")
    for page in (buyer, seller):
        page.goto(f"{server.base}/miniapp/#/contract/{order_id}")
        page.reload()
        expect(page.locator("[data-status=cancelled]").first).to_have_text("已注销")
        timeline = page.locator("#timeline")
        for step in ("出卖人填写合同", "买受人签署", "出卖人签署", "出卖人提交合同"):
            expect(timeline).to_contain_text(step)
        for step in ("申请注销网签合同", "签署注销协议", "合同已注销"):
            expect(timeline).to_contain_text(step)
        assert not RAW_CODE.search(page.locator("main").inner_text())


def test_seized_title_withdrawn_order_and_locked_check_code(
    server: Server, phone_page: Any
) -> None:
    """Runs after the journey above in this module (the title is free again once that
    contract is cancelled); it locks the demo title's check code for the rest of the day."""
    expect = _expect
    wang, zhang = server.person("王五"), server.person("张三")
    title = server.world["resale_title"]
    seller = phone_page()
    _seller_ready(seller, server, wang)

    # 查封: refused with the seed's words, whatever the check code says.
    seizure = _restrict(server, "judicial_seizure", "示范市人民法院")
    _check_title(seller, title["certificate_no"], title["check_code"])
    expect(seller.locator("#title-restricted")).to_have_text("该房屋已司法查封或行政限制。")
    expect(seller.locator("#title-result")).to_be_empty()
    regulator = server.staff_login(server.role("regulator")["phone"])
    lifted = server.http.post(
        f"/api/v1/register/restrictions/{seizure['id']}/lift",
        json={"authority": "示范市人民法院", "document_no": "解封-2026-001"},
        headers=regulator,
    )
    assert lifted.status_code == 200, lifted.text

    # An order withdrawn before anyone signed (注销电子合同订单), to be filled again.
    _check_title(seller, title["certificate_no"], title["check_code"])
    seller.get_by_role("link", name="签订合同").click()
    _fill_contract(seller, zhang, supervised=False)
    expect(_heading(seller, "存量房买卖合同订单")).to_be_visible()
    seller.get_by_role("button", name="生成电子合同订单").click()
    expect(seller.get_by_role("img", name="签约二维码")).to_be_visible()
    seller.get_by_role("button", name="注销电子合同订单").click()
    expect(seller.locator("#void-msg")).to_have_text("请填写注销原因。")
    seller.fill("#void-reason", "修改成交价格")
    seller.get_by_role("button", name="注销电子合同订单").click()
    expect(seller.locator("#order-ended")).to_have_text("电子合同订单已注销。")
    expect(seller.locator("[data-status=voided]").first).to_have_text("已作废")

    # Wrong check codes: one try fewer each time, then the title is locked for the day.
    seller.get_by_role("link", name="重新签订合同").click()
    left = None
    while True:
        _check_title(seller, title["certificate_no"], "ZZZZZZ")
        message = seller.locator("#title-msg")
        expect(message.get_by_role("alert")).to_be_visible()
        text = message.inner_text()
        if "锁定" in text:
            break
        tries = re.search(r"还可尝试 (\d) 次", text)
        remaining = int(tries.group(1)) if tries else 0
        assert left is None or remaining == left - 1, text
        if not tries:
            assert "今日已无剩余尝试次数" in text, text
        left = remaining
    assert left == 0
    expect(seller.locator("#title-msg")).to_have_text(
        "校验码错误次数过多，该产权证今日已锁定，请明日再试或到交易中心窗口办理。"
    )
    _check_title(seller, title["certificate_no"], title["check_code"])  # the right one too
    expect(seller.locator("#title-msg")).to_contain_text("今日已锁定")
