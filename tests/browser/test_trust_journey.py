"""Issue 19 walked as a buyer would, on a 375×812 phone, from the order link to the paid
deposit and the signed contract: every page says which flat and which step; the separate
consent to the personal-information notice is recorded; the sign button waits for the end
of the text; the consent box and the confirmation sheet come before the code is checked;
the face check comes back by itself in the same tab; the bank's page shows yuan fixed by
the link and the notice turns 已缴清 by itself with a receipt; the timeline is a stepper
in Chinese with actors by role; the password is masked, shown and shown again after a
fresh SMS code; 拒签 with a reason. On every page: no raw code or snake_case word, text
contrast of at least 4.5:1 and tap targets of at least 44×44 px, measured from computed
styles. With ``WANGQIAN_DOCS_SCREENSHOT=1`` the README's gallery (docs/gallery/) is
written from these pages."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.browser import journey
from tests.browser.conftest import ROOT, Server
from tests.browser.journey import expect, heading

GALLERY = ROOT / "docs" / "gallery"
FLAT = "明湖花园1栋2单元303室"


def audit(page: Any, name: str) -> None:
    """A page of the journey: readable, tappable, Chinese; and its picture for the README."""
    journey.audit(page, name)
    if os.environ.get("WANGQIAN_DOCS_SCREENSHOT"):
        _gallery(page, name)


def _gallery(page: Any, name: str) -> None:
    """A 375 px wide PNG, in few colours, so the README's pictures stay small."""
    from PIL import Image

    GALLERY.mkdir(parents=True, exist_ok=True)
    shot = page.screenshot(scale="css")
    picture = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=48)
    picture.save(GALLERY / f"{name}.png", optimize=True)


def _bearer(page: Any) -> dict[str, str]:
    token = page.evaluate("sessionStorage.getItem('wq.token')")
    return {"Authorization": f"Bearer {token}"}


def _order(server: Server, agent: dict[str, str], room: str, buyer: dict[str, Any]) -> Any:
    unit = next(u["id"] for u in server.world["units"] if u["room_no"] == room)
    body = {
        "unit_id": unit,
        "kind": "presale",
        "buyers": [{"name": buyer["name"], "id_number": buyer["id_number"],
                    "phone": buyer["phone"], "share": ""}],
        "price_fen": 2_000_000_00,
        "payment_method": "commercial_loan",
        "deposit_fen": 50_000_00,
        "down_payment_fen": 600_000_00,
        "delivery_date": "2028-06-30",
    }  # fmt: skip
    created = server.http.post("/api/v1/contracts", json=body, headers=agent)
    assert created.status_code == 201, created.text
    issued = server.http.post(f"/api/v1/contracts/{created.json()['id']}/issue", headers=agent)
    assert issued.status_code == 200, issued.text
    return issued.json()


def _context(page: Any, step: int, name: str) -> None:
    expect(page.locator("#signing-flat")).to_have_text(f"您正在签署：{FLAT}")
    expect(page.locator("#signing-step")).to_have_text(f"第 {step} 步，共 7 步 · {name}")


def _watch_busy_labels(page: Any) -> None:
    """Record every label a button shows, to see what it says while its request runs."""
    page.evaluate(
        """() => { window.__labels = [];
        new MutationObserver(() => document.querySelectorAll('button').forEach((b) => {
          if (!window.__labels.includes(b.textContent)) window.__labels.push(b.textContent); }))
          .observe(document.body, { subtree: true, childList: true, characterData: true }); }"""
    )


def _seal(server: Server, order_id: str) -> dict[str, Any]:
    keeper_phone = server.role("seal_keeper")["phone"]
    keeper = server.staff_login(keeper_phone)
    before = server.seen(keeper_phone)
    challenge = server.http.post(f"/api/v1/contracts/{order_id}/seal/challenge", headers=keeper)
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": server.next_code(keeper_phone, before),
    }
    sealed = server.http.post(f"/api/v1/contracts/{order_id}/seal", json=body, headers=keeper)
    assert sealed.status_code == 200, sealed.text
    return sealed.json()


def test_a_buyer_signs_a_contract_they_can_trust(server: Server, phone_page: Any) -> None:
    buyer = server.person("李四")
    agent = server.staff_login(server.role("sales_agent")["phone"])
    issued = _order(server, agent, "303", buyer)
    order_id = issued["order"]["id"]
    page = phone_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    # 1. The link says which flat, before anyone is asked to log in.
    page.goto(issued["scan_url"])
    expect(heading(page, "微信授权登录")).to_be_visible()
    _context(page, 1, "登录")
    audit(page, "01-login")
    page.fill("#wx-user", buyer["phone"])
    page.get_by_role("button", name="微信一键登录").click()
    expect(heading(page, "绑定手机号")).to_be_visible()
    _context(page, 1, "登录")
    page.fill("#phone", buyer["phone"])
    before = server.seen(buyer["phone"])
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_text("验证码已发送")).to_be_visible()
    page.fill("#code", "000000")
    page.get_by_role("button", name="绑定").click()
    expect(page.locator("#phone-msg .error")).to_be_visible()  # next to its field
    audit(page, "02-bind-phone")
    page.fill("#code", server.next_code(buyer["phone"], before))
    expect(page.locator("#phone-msg .error")).to_have_count(0)  # gone once it no longer applies
    page.get_by_role("button", name="绑定").click()

    # 2. The separate consent, before the ID number and the face; kept with the person.
    expect(heading(page, "个人信息收集与使用告知")).to_be_visible()
    _context(page, 2, "个人信息授权")
    for part in ("收集什么", "为什么收集", "保存多久"):
        expect(page.locator("#pi-notice")).to_contain_text(part)
    audit(page, "03-consent")
    page.get_by_role("button", name="同意", exact=True).click()
    expect(heading(page, "实名认证")).to_be_visible()
    me = server.http.get("/api/v1/me", headers=_bearer(page)).json()
    assert me["pi_consent_at"] and me["pi_consent_version"]
    _context(page, 3, "实名认证")
    audit(page, "04-real-name")
    page.fill("#name", buyer["name"])
    page.fill("#id-number", buyer["id_number"])
    page.get_by_role("button", name="提交认证").click()

    # 5. The face check in the same tab (nothing a popup blocker can stop); back from the
    # provider, the result comes by itself, without a tap.
    expect(heading(page, "人脸核身")).to_be_visible()
    _context(page, 4, "人脸核身")
    audit(page, "05-face")
    page.get_by_role("button", name="开始人脸核身").click()
    page.wait_for_url(re.compile(r"/mock/face/"))
    audit(page, "06-face-provider")
    page.get_by_role("button", name="开始人脸核身").click()
    # On commit, not on load: the result shows as soon as the page asks, for 1.5 s.
    page.wait_for_url(re.compile(r"/miniapp/#/face"), wait_until="commit")
    expect(page.locator("#face-passed")).to_have_text("人脸核身通过。")
    assert len(page.context.pages) == 1  # no new window was needed

    # 3. The contract: the flat as people write it, areas, dates and money; the index
    # and the key clauses; the sign button inactive until the end of the text.
    expect(heading(page, "签约各方")).to_be_visible()
    _context(page, 5, "阅读合同")
    main = page.locator("main")
    expect(page.locator("#flat")).to_have_text(FLAT)
    expect(main).to_contain_text("89.12 ㎡")
    expect(main).to_contain_text("72.37 ㎡")
    expect(main).to_contain_text("2028年6月30日")
    expect(main).to_contain_text("2,000,000.00 元")
    expect(page.locator("#contract-text")).to_contain_text(f"为{FLAT}")
    keys = page.locator("#key-clauses button")
    expect(keys).to_have_text(["价款", "付款方式", "交付", "违约责任", "面积差异"])
    expect(page.locator("#to-sign")).to_be_disabled()
    expect(page.locator("#to-sign")).to_have_text("请阅读至合同末尾")
    audit(page, "07-contract")
    page.get_by_role("button", name="违约责任").click()
    chapter = page.locator("#key-clauses button", has_text="违约责任").get_attribute("data-chapter")
    expect(page.locator(f"#chapter-{chapter} h4")).to_contain_text("违约")
    expect(page.locator(f"#chapter-{chapter} h4")).to_be_in_viewport()
    expect(page.locator("#to-sign")).to_be_disabled()

    # 8. The deposit on the bank's page: yuan, fixed by the signed link, and a way back;
    # the notice turns 已缴清 by itself, with the paid time and a receipt.
    notices = page.locator("#notices")
    expect(notices.locator("li").first).to_contain_text("未缴")
    with page.expect_popup() as popup:
        notices.get_by_role("link", name="去缴款（监管银行）").click()
    bank = popup.value
    expect(bank.locator("#amount-yuan")).to_have_text("¥50,000.00")
    assert bank.locator("input[name=amount_fen]").get_attribute("type") == "hidden"
    expect(bank.locator("#back")).to_have_attribute("href", f"/miniapp/#/contract/{order_id}")
    audit(bank, "08-bank")
    bank.get_by_role("button", name="确认支付 ¥50,000.00").click()
    expect(bank.locator("#paid")).to_contain_text("支付成功")
    expect(bank.locator("#back")).to_have_text("返回网签查看缴款结果")
    bank.close()
    deposit = notices.locator("li[data-notice=deposit]")
    expect(deposit).to_contain_text("已缴清", timeout=15_000)  # no reload
    expect(deposit.locator(".paid-at")).to_have_text(
        re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d$")
    )
    with page.expect_download() as receipt:
        deposit.get_by_role("button", name="下载缴款凭证").click()
    assert Path(receipt.value.path()).read_bytes().startswith(b"%PDF-")
    assert receipt.value.suggested_filename.startswith("缴款凭证-")
    expect(page.locator("#stepper")).to_contain_text("监管银行到账：定金 50,000.00 元")

    # The end of the text: the button becomes active.
    page.locator("#text-end").scroll_into_view_if_needed()
    expect(page.locator("#to-sign")).to_be_enabled()
    expect(page.locator("#read-note")).to_have_text("您已阅读至合同末尾。")
    page.locator("#to-sign").click()

    # 4. Consent at signing, then the confirmation sheet before the code is checked.
    expect(heading(page, "短信验证签署")).to_be_visible()
    _context(page, 6, "确认签署")
    expect(page.locator("#sign-flat")).to_have_text(FLAT)
    expect(page.locator("label.check")).to_have_text(
        re.compile(r"我已阅读并同意《商品房买卖合同（预售）.*》《数字证书服务协议》")
    )
    page.locator("#certificate-agreement summary").click()
    expect(page.locator("#certificate-agreement")).to_contain_text("签名完成后立即销毁")
    page.locator("#sign").click()
    expect(page.locator("#agree-msg")).to_contain_text("请先阅读并勾选同意")
    page.locator("#agree").check()
    expect(page.locator("#agree-msg .error")).to_have_count(0)
    before = server.seen(buyer["phone"])
    _watch_busy_labels(page)
    page.get_by_role("button", name="获取短信验证码").click()
    expect(page.get_by_text("验证码已发送至")).to_be_visible()
    page.fill("#sign-code", server.next_code(buyer["phone"], before))
    audit(page, "09-sign")
    page.locator("#sign").click()
    sheet = page.get_by_role("dialog", name="签署确认")
    expect(sheet.locator("#confirm-flat")).to_have_text(FLAT)
    expect(sheet.locator("#confirm-price")).to_have_text("2,000,000.00 元")
    expect(sheet.locator("#confirm-words")).to_have_text("人民币贰佰万元整")
    expect(sheet.locator("#confirm-method")).to_have_text("商业贷款")
    expect(sheet.locator("#confirm-legal")).to_contain_text("签署后具有法律效力")
    audit(page, "10-confirm")
    sheet.get_by_role("button", name="返回修改").click()
    expect(sheet).to_have_count(0)
    page.locator("#sign").click()
    page.get_by_role("dialog", name="签署确认").get_by_role("button", name="确认签署").click()
    expect(heading(page, "您已完成签署")).to_be_visible(timeout=30_000)
    labels = page.evaluate("window.__labels || []")
    assert "发送中…" in labels and "签署中…" in labels, labels
    _context(page, 7, "签署完成")
    audit(page, "11-signed")

    # The developer seals; 9. the contract password: one name, what it is for, masked
    # with 显示 and 复制, and shown again after a fresh SMS code.
    sealed = _seal(server, order_id)
    page.get_by_role("button", name="刷新状态").click()
    expect(heading(page, "签约完成")).to_be_visible()
    card = page.locator("#password-card")
    expect(card).to_contain_text("合同查询")
    page.get_by_role("button", name="查看合同密码").click()
    expect(page.locator("#contract-password")).to_have_text("•" * 8)
    page.get_by_role("button", name="显示").click()
    expect(page.locator("#contract-password")).to_have_text(sealed["password"])
    page.get_by_role("button", name="复制").click()
    expect(page.locator("#password-copied")).to_have_text("合同密码已复制。")
    assert page.evaluate("navigator.clipboard.readText()") == sealed["password"]
    audit(page, "12-password")
    page.get_by_role("button", name="刷新状态").click()
    page.get_by_role("button", name="查看合同密码").click()
    expect(page.locator("#password-again")).to_contain_text("请验证短信验证码")
    before = server.seen(buyer["phone"])
    page.get_by_role("button", name="获取短信验证码").click()
    expect(card).to_contain_text("验证码已发送至")
    page.fill("#password-code", server.next_code(buyer["phone"], before))
    page.get_by_role("button", name="验证并查看").click()
    page.get_by_role("button", name="显示").click()
    expect(page.locator("#contract-password")).to_have_text(sealed["password"])

    # 6. The timeline: a stepper in Chinese, actors by role, no internal events.
    page.get_by_role("link", name="查看合同与进度").click()
    stepper = page.locator("#stepper")
    expect(stepper).to_contain_text("创建合同订单")
    expect(stepper).to_contain_text("销售人员 ")
    expect(stepper).to_contain_text("买受人 李*")
    expect(stepper).to_contain_text("开发企业盖章")
    expect(stepper).not_to_contain_text("验证码")
    expect(stepper.locator("li.money")).to_have_count(1)
    # 9. The password can be seen again from the contract too, after a fresh SMS code.
    page.locator("#password-card").get_by_role("button", name="查看合同密码").click()
    expect(page.locator("#password-again")).to_contain_text("请验证短信验证码")
    page.locator("#timeline").evaluate("box => box.closest('.card').scrollIntoView()")
    audit(page, "13-timeline")

    # 1. Home: what is done and what is due next (the down payment).
    page.get_by_role("link", name="首页").click()
    todo = page.locator("#todo-list")
    expect(todo).to_contain_text(FLAT)
    expect(todo).to_contain_text("定金已缴清")
    expect(todo).to_contain_text("下一步：缴纳首付款 600,000.00 元")
    audit(page, "14-home")

    # 7. The public check writes the flat the same way.
    public = phone_page()
    public.goto(f"{server.base}/miniapp/#/verify")
    public.fill("#number", sealed["contract_number"])
    public.fill("#password", sealed["password"])
    public.get_by_role("button", name="查询").click()
    expect(public.locator("#verified-flat")).to_have_text(FLAT)
    audit(public, "15-verify")


def test_a_buyer_declines_with_a_reason(server: Server, phone_page: Any) -> None:
    """An unknown link said before login; the face check found again on focus; 拒签 from
    the sign page, with a reason: the order is withdrawn and says so."""
    buyer = server.person("张三")
    agent = server.staff_login(server.role("sales_agent")["phone"])
    issued = _order(server, agent, "304", buyer)
    page = phone_page()
    # An unknown link says so before anyone is asked to log in.
    page.goto(f"{server.base}/miniapp/#/scan/NoSuchScene123")
    expect(page.get_by_role("alert")).to_have_text("二维码无效或已失效。")
    expect(page.locator("#wx-user")).to_have_count(0)
    page.goto(issued["scan_url"])
    expect(page.locator("#signing-flat")).to_have_text("您正在签署：明湖花园1栋2单元304室")
    page.fill("#wx-user", buyer["phone"])
    page.get_by_role("button", name="微信一键登录").click()
    page.fill("#phone", buyer["phone"])
    before = server.seen(buyer["phone"])
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_text("验证码已发送")).to_be_visible()
    page.fill("#code", server.next_code(buyer["phone"], before))
    page.get_by_role("button", name="绑定").click()
    journey.real_name(page, buyer)
    # 5. Back from the provider's page before finishing: the page says so by itself; the
    # check finished meanwhile (as on another device), the page finds out when it is
    # focused again, without a tap.
    expect(heading(page, "人脸核身")).to_be_visible()
    page.get_by_role("button", name="开始人脸核身").click()
    page.wait_for_url(re.compile(r"/mock/face/"))
    token = parse_qs(urlsplit(page.url).query)["biz_token"][0]
    page.go_back()
    expect(page.locator("#face-pending")).to_contain_text("尚未完成核身")
    done = server.http.post("/mock/face/page/complete", data={"biz_token": token, "result": "pass"})
    assert done.status_code in (200, 303), done.text
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    expect(page.locator("#face-passed")).to_have_text("人脸核身通过。")
    expect(heading(page, "签约各方")).to_be_visible()
    journey.to_sign(page)
    page.get_by_role("button", name="拒签", exact=True).click()
    page.get_by_role("button", name="确认拒签").click()
    expect(page.locator("#decline-msg")).to_contain_text("请填写拒签原因")
    page.fill("#decline-reason", "总价与口头约定不一致")
    expect(page.locator("#decline-msg .error")).to_have_count(0)
    audit(page, "16-decline")
    page.get_by_role("button", name="确认拒签").click()
    expect(page.locator("#declined")).to_have_text("您已拒签")
    expect(page.locator("[data-status=voided]").first).to_have_text("已作废")
    deadline = time.monotonic() + 5
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = server.http.get(
            f"/api/v1/contracts/{issued['order']['id']}/events", headers=agent
        ).json()["events"]
        if any(e["type"] == "declined" for e in events):
            break
        time.sleep(0.2)
    declined = next(e for e in events if e["type"] == "declined")
    assert declined["detail"]["reason"] == "总价与口头约定不一致"
