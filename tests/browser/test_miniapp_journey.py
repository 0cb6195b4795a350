"""The mini program H5 pages in a phone-sized Chromium: the new-home journey with two
buyers (the deposit first, signing, the seal, filing, then 退房 and the refund), a
withdrawn QR code, and public verification."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from api.demo import DEMO_ACCOUNT_NUMBER
from signing.qr import qr_png
from tests.browser import journey
from tests.browser.conftest import ROOT, Server
from tests.browser.qr_photos import Shot, photograph

DOCS_SCREENSHOT = ROOT / "docs" / "signing-page.png"


def _expect(page: Any) -> Any:
    from playwright.sync_api import expect

    return expect(page)


def _order(server: Server, agent: dict[str, str], room: str, *buyers: dict[str, Any]) -> Any:
    unit = next(u["id"] for u in server.world["units"] if u["room_no"] == room)
    shares = ["1/2", "1/2"] if len(buyers) == 2 else [""]
    body = {
        "unit_id": unit,
        "kind": "presale",
        "buyers": [
            {"name": b["name"], "id_number": b["id_number"], "phone": b["phone"], "share": s}
            for b, s in zip(buyers, shares, strict=True)
        ],
        "price_fen": 2_000_000_00,
        "payment_method": "commercial_loan",
        "deposit_fen": 50_000_00,
        "down_payment_fen": 600_000_00,
        "delivery_date": "2028-06-30",
    }
    created = server.http.post("/api/v1/contracts", json=body, headers=agent)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    issued = server.http.post(f"/api/v1/contracts/{order_id}/issue", headers=agent)
    assert issued.status_code == 200, issued.text
    return issued.json()


def _verify_identity(page: Any, server: Server, person: dict[str, Any], scan_url: str) -> None:
    """Open the scanned link (or the mini program's home); log in with WeChat, bind the
    phone, real-name, face check."""
    expect = _expect
    page.goto(scan_url)
    expect(page.locator("main").get_by_role("heading", name="微信授权登录")).to_be_visible()
    page.fill("#wx-user", person["phone"])  # the mock WeChat user key
    page.get_by_role("button", name="微信一键登录").click()

    expect(page.locator("main").get_by_role("heading", name="绑定手机号")).to_be_visible()
    page.fill("#phone", person["phone"])
    before = server.seen(person["phone"])
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_text("验证码已发送")).to_be_visible()
    page.fill("#code", server.next_code(person["phone"], before))
    page.get_by_role("button", name="绑定").click()

    if "#/scan/" not in scan_url:  # no order waiting: the steps page leads on
        expect(page.locator("main").get_by_role("heading", name="签约步骤")).to_be_visible()
        page.get_by_role("link", name="2. 个人信息授权").click()
    journey.real_name(page, person)
    journey.face_check(page)


def _pay_deposit(page: Any) -> None:
    """The deposit notice opened with the order: paid on the bank's page before signing."""
    expect = _expect
    expect(page.locator("#deposit-first")).to_contain_text("请先缴清定金")
    expect(page.locator("#notices")).to_contain_text("50,000.00 元")
    pay_link = page.locator("#notices a", has_text="去缴款")
    expect(pay_link.first).to_have_attribute("href", re.compile(r"/mock/bank/pay\?"))
    with page.expect_popup() as bank_popup:
        pay_link.first.click()
    bank = bank_popup.value
    expect(bank.locator("#amount-yuan")).to_have_text("¥50,000.00")
    bank.get_by_role("button", name=re.compile("确认支付")).click()
    expect(bank.locator("body")).to_contain_text("支付成功")
    bank.close()
    expect(page.locator("#notices li").first).to_contain_text("已缴清")  # by itself
    expect(page.locator("#deposit-first")).to_have_count(0)


def _seal_through_the_api(server: Server, path: str) -> dict[str, Any]:
    """The developer's seal keeper seals (a contract or a termination) through the API."""
    keeper_phone = server.role("seal_keeper")["phone"]
    keeper = server.staff_login(keeper_phone)
    before = server.seen(keeper_phone)
    challenge = server.http.post(f"{path}/seal/challenge", headers=keeper)
    assert challenge.status_code == 200, challenge.text
    sealed = server.http.post(
        f"{path}/seal",
        json={
            "challenge_id": challenge.json()["challenge_id"],
            "code": server.next_code(keeper_phone, before),
        },
        headers=keeper,
    )
    assert sealed.status_code == 200, sealed.text
    return sealed.json()


def _read_the_contract(page: Any) -> None:
    """The whole text, chapter by chapter, stands before the sign button."""
    expect = _expect
    text = page.locator("#contract-text")
    expect(text).to_contain_text("商品房买卖合同（预售）")
    for heading in ("第一章　合同当事人", "第三章　商品房价款及付款方式", "争议解决", "其他约定"):
        expect(text).to_contain_text(heading)
    expect(text).to_contain_text("人民币贰佰万元整（¥2,000,000.00）")
    chapters = text.locator("section.chapter")
    expect(chapters).to_have_count(10)
    below = page.evaluate(
        "() => document.getElementById('to-sign').getBoundingClientRect().top"
        " > document.getElementById('text-end').getBoundingClientRect().top"
    )
    assert below, "the sign button comes after the whole text"


def _sign(page: Any, server: Server, person: dict[str, Any], *, wrong_first: bool) -> None:
    expect = _expect
    _read_the_contract(page)
    journey.to_sign(page)
    before = server.seen(person["phone"])
    page.get_by_role("button", name="获取短信验证码").click()
    expect(page.get_by_text("验证码已发送至")).to_be_visible()
    code = server.next_code(person["phone"], before)
    if os.environ.get("WANGQIAN_DOCS_SCREENSHOT") and wrong_first:
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOT))
    if wrong_first:
        journey.sign_with_code(page, f"{(int(code) + 1) % 1_000_000:06d}")
        expect(page.locator("#sign-msg")).to_contain_text("验证码错误，还可尝试 4 次")
    journey.sign_with_code(page, code)
    expect(page.locator("main").get_by_role("heading", name="您已完成签署")).to_be_visible(
        timeout=30_000
    )


def _scan_photo(page: Any, server: Server, order_id: str, agent: dict[str, str]) -> None:
    """From the home page, open the scan page and upload photos: one with no code, one of
    somebody else's QR code, then a tilted, rotated JPEG of the order's code."""
    expect = _expect
    page.get_by_role("link", name="5. 扫码签约").click()
    expect(page.locator("main").get_by_role("heading", name="扫码签约")).to_be_visible()
    photo = page.locator("#scan-photo")

    desk = photograph(None, Shot(size=1000, seed=5))
    photo.set_input_files(
        files=[{"name": "desk.jpg", "mimeType": "image/jpeg", "buffer": desk.data}]
    )
    expect(page.get_by_role("alert")).to_contain_text("未能识别照片中的二维码")

    scene = server.http.get(f"/api/v1/contracts/{order_id}", headers=agent).json()["scene"]
    for n, text in enumerate(
        (
            "https://shop.example/coupon?id=12345",
            f"https://shop.example/pay?scene={scene}",  # a scene, but not our link
            f"https://elsewhere.example/miniapp/#/scan/{scene}",  # our path on another host
        )
    ):
        other = photograph(qr_png(text), Shot(seed=6 + n, rotation=10 + 40 * n))
        page.locator("#scan-msg").evaluate("box => { box.textContent = ''; }")
        photo.set_input_files(
            files=[{"name": "other.jpg", "mimeType": "image/jpeg", "buffer": other.data}]
        )
        expect(page.get_by_role("alert")).to_contain_text("这不是网签合同的签约二维码")
        assert "#/scan/" not in page.url

    code = server.http.get(f"/api/v1/contracts/{order_id}/qr.png", headers=agent)
    assert code.status_code == 200, code.text
    shot = Shot(size=1600, coverage=0.3, rotation=160, tilt=20, tilt_axis=30, light=0.7, seed=7)
    taken = photograph(code.content, shot)
    photo.set_input_files(
        files=[{"name": "qr.jpg", "mimeType": "image/jpeg", "buffer": taken.data}]
    )


def test_two_buyers_sign_seal_and_verify(server: Server, phone_page: Any) -> None:
    expect = _expect
    zhang, li = server.person("张三"), server.person("李四")
    agent = server.staff_login(server.role("sales_agent")["phone"])
    issued = _order(server, agent, "201", zhang, li)
    scene = issued["scene"]
    assert issued["scan_url"] == f"{server.base}/miniapp/#/scan/{scene}"

    pages = {}
    for person in (zhang, li):
        page = phone_page()
        pages[person["name"]] = page
        if person is zhang:  # the phone's camera opened the scanned link
            _verify_identity(page, server, person, issued["scan_url"])
        else:  # the mini program opened first; the QR code is read from a photo in the page
            _verify_identity(page, server, person, f"{server.base}/miniapp/")
            expect(page.locator("main").get_by_role("heading", name="签约步骤")).to_be_visible()
            _scan_photo(page, server, issued["order"]["id"], agent)
        # The contract to read.
        expect(page.locator("main").get_by_role("heading", name="签约各方")).to_be_visible()
        expect(page.locator("main")).to_contain_text("2,000,000.00 元")
        expect(page.locator("main")).to_contain_text("商业贷款")
        expect(page.locator("main")).to_contain_text("201")
        expect(page.locator("main")).to_contain_text("㎡")
        expect(page.locator("main")).not_to_contain_text(person["id_number"])  # masked
        if person is zhang:  # seed 001: the deposit is paid before anyone signs
            _pay_deposit(page)
        _sign(page, server, person, wrong_first=person is zhang)
        if person is zhang:  # WeChat's sheet: 张三 allows the news of the seal on WeChat
            page.get_by_role("button", name="订阅微信消息提醒").click()
            sheet = page.get_by_role("dialog", name="订阅消息")
            expect(sheet).to_contain_text("买卖合同签订")
            sheet.get_by_role("button", name="允许").click()
            expect(page.locator("#subscribed")).to_contain_text("买卖合同签订")

    # Both buyers signed: the developer's seal keeper seals through the API.
    order_id = issued["order"]["id"]
    sealed = _seal_through_the_api(server, f"/api/v1/contracts/{order_id}")
    number, password = sealed["contract_number"], sealed["password"]
    # The news reaches 张三 on WeChat too (he allowed it), 李四 by SMS only.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sent = server.http.get("/mock/wechat/subscribe/messages").json()
        if sent:
            break
        time.sleep(0.2)
    assert [(m["template_id"], m["data"]["character_string2"]["value"]) for m in sent] == [
        ("mock-contract-signed", number)
    ]

    for name, page in pages.items():
        page.get_by_role("button", name="刷新状态").click()
        expect(page.locator("main").get_by_role("heading", name="签约完成")).to_be_visible()
        if name == "张三":
            _download_the_pdf(page, server, number)
        expect(page.locator("[data-status=filing_pending]").first).to_have_text("已签约·待备案")
        expect(page.locator("#contract-number")).to_have_text(number)
        # The password: masked with 显示; a second look asks for a fresh SMS code.
        page.get_by_role("button", name="查看合同密码").click()
        expect(page.locator("#contract-password")).to_have_text("•" * 8)
        page.get_by_role("button", name="显示").click()
        expect(page.locator("#contract-password")).to_have_text(password)
        page.get_by_role("button", name="刷新状态").click()
        page.get_by_role("button", name="查看合同密码").click()
        expect(page.locator("#password-again")).to_contain_text("请验证短信验证码")

    # My contracts, the timeline and the payment notices: the deposit paid, the down
    # payment due now.
    page = pages["李四"]
    page.get_by_role("link", name="我的合同").click()
    expect(page.locator("#contract-list")).to_contain_text("已签约·待备案")
    expect(page.locator("#contract-list")).to_contain_text(number)
    page.locator("#contract-list a").first.click()
    expect(page.locator("#timeline")).to_contain_text("开发企业盖章")
    expect(page.locator("#timeline")).to_contain_text("提交备案")
    expect(page.locator("#notices li").first).to_contain_text("已缴清")
    expect(page.locator("#notices li").nth(1)).to_contain_text("600,000.00 元")
    expect(page.locator("#notices li").nth(1)).to_contain_text("未缴")

    # The regulator files the contract (through the API); the buyer's page says so.
    regulator = server.staff_login(server.role("regulator")["phone"])
    filed = server.http.post(f"/api/v1/contracts/{order_id}/filing/approve", headers=regulator)
    assert filed.status_code == 200, filed.text
    filing_number = filed.json()["filing_number"]
    page.reload()
    expect(page.locator("[data-status=filed]").first).to_have_text("已备案")
    expect(page.locator("#filing-number")).to_have_text(filing_number)

    # The timeline shows both buyers opened the whole text before signing.
    expect(page.locator("#timeline")).to_contain_text("阅读合同全文")

    # The QR code printed on the PDF opens the public check, no login needed.
    agent_events = server.http.get(f"/api/v1/contracts/{order_id}/events", headers=agent).json()
    qr = next(e for e in agent_events["events"] if e["type"] == "pdf_finished")["detail"]["qr"]
    checker = phone_page()
    checker.goto(qr)
    expect(checker.locator("#qr-genuine")).to_have_text("二维码由平台签发，合同真实")
    expect(checker.locator("main")).to_contain_text(number)
    checker.goto(qr[:-3] + ("AAA" if not qr.endswith("AAA") else "BBB"))
    checker.reload()
    expect(checker.locator("#qr-bad")).to_be_visible()

    # Anyone can check the contract with its number and password, without logging in.
    public = phone_page()
    public.goto(f"{server.base}/miniapp/#/verify")
    public.fill("#number", number)
    public.fill("#password", password)
    public.get_by_role("button", name="查询").click()
    expect(public.locator("#genuine")).to_have_text("合同真实有效")
    expect(public.locator("#verify-msg")).to_contain_text(number)
    expect(public.locator("#verify-msg")).to_contain_text("已备案")
    expect(public.locator("#verify-msg")).to_contain_text(filing_number)

    # 退房: 张三 applies, both buyers sign the termination, the developer seals it, the
    # regulator approves; the deposit goes back and the buyer's page shows the refund.
    page = pages["张三"]
    page.goto(f"{server.base}/miniapp/#/contract/{order_id}")
    page.get_by_role("link", name="申请退房").click()
    page.fill("#cancel-reason", "家庭原因，协商退房")
    page.get_by_role("button", name="提交退房申请").click()
    expect(
        page.locator("main").get_by_role("heading", name="商品房买卖合同解除协议")
    ).to_be_visible()
    expect(page.locator("main")).to_contain_text("50,000.00 元（全部退还买受人）")
    for person in (zhang, li):
        if person is li:
            page = pages["李四"]
            page.goto(f"{server.base}/miniapp/#/contract/{order_id}")
            page.reload()  # the same address: a hash route does not reload by itself
            page.get_by_role("link", name=re.compile("注销申请")).click()
        before = server.seen(person["phone"])
        page.get_by_role("button", name="获取短信验证码").click()
        expect(page.get_by_text("验证码已发送至")).to_be_visible()
        page.fill("#cancel-code", server.next_code(person["phone"], before))
        page.get_by_role("button", name="确认签署解除协议").click()
        expect(page.locator("#cancel-sign")).to_have_count(0)
    expect(page.locator("[data-cancel-status]")).to_have_text("待开发企业盖章")
    cancellation = server.http.get(
        "/api/v1/cancellations", params={"status": "awaiting_seal"}, headers=regulator
    ).json()["items"][0]
    _seal_through_the_api(server, f"/api/v1/cancellations/{cancellation['id']}")
    approved = server.http.post(
        f"/api/v1/cancellations/{cancellation['id']}/approve", headers=regulator
    )
    assert approved.status_code == 200, approved.text
    admin = server.staff_login(server.role("company_admin")["phone"])
    account = server.http.get("/api/v1/escrow/accounts", headers=admin).json()["items"][0]
    statement = server.http.get(
        f"/api/v1/escrow/accounts/{account['id']}/statement", headers=admin
    ).json()
    refund = next(i for i in statement["instructions"] if i["kind"] == "refund")
    page.goto(f"{server.base}/miniapp/#/contract/{order_id}")
    page.reload()
    expect(page.locator("[data-status=cancelled]").first).to_have_text("已注销")
    expect(page.locator("#refund")).to_contain_text("退款办理中 50,000.00 元")
    executed = server.http.post(
        f"/mock/bank/instructions/{refund['id']}/execute",
        json={
            "kind": "refund",
            "account_number": DEMO_ACCOUNT_NUMBER,
            "amount_fen": refund["amount_fen"],
        },
    )
    assert executed.json()["status"] == 200, executed.text
    page.reload()
    expect(page.locator("#refund")).to_contain_text("已退回 50,000.00 元")


def test_a_withdrawn_qr_code_says_so(server: Server, phone_page: Any) -> None:
    """A real server's clock cannot be moved, so the QR is made unusable by voiding the
    order; the page shows the API's clear message instead of a contract."""
    expect = _expect
    agent = server.staff_login(server.role("sales_agent")["phone"])
    issued = _order(server, agent, "202", server.person("王五"))
    voided = server.http.post(
        f"/api/v1/contracts/{issued['order']['id']}/void",
        json={"reason": "客户改选其他房源"},
        headers=agent,
    )
    assert voided.status_code == 200, voided.text

    page = phone_page()
    page.goto(issued["scan_url"])  # said before anyone is asked to log in
    expect(page.locator("main").get_by_role("heading", name="无法打开合同")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("该合同订单已作废。")
    expect(page.locator("#ended-flat")).to_have_text("明湖花园1栋1单元202室")
    expect(page.locator("#wx-user")).to_have_count(0)
    page.goto(f"{server.base}/miniapp/#/login")
    page.fill("#wx-user", "walk-in-visitor")
    page.get_by_role("button", name="微信一键登录").click()
    expect(page.locator("main").get_by_role("heading", name="绑定手机号")).to_be_visible()
    page.goto(issued["scan_url"])  # the scanned link again, now logged in
    expect(page.locator("main").get_by_role("heading", name="无法打开合同")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("该合同订单已作废。")

    page.goto(f"{server.base}/miniapp/#/scan/NoSuchScene123")
    expect(page.get_by_role("alert")).to_have_text("二维码无效或已失效。")


def test_an_expired_qr_code_says_so(server: Server, phone_page: Any) -> None:
    expect = _expect
    agent = server.staff_login(server.role("sales_agent")["phone"])
    issued = _order(server, agent, "302", server.person("王五"))
    server.let_expire(issued["order"]["id"])

    page = phone_page()
    page.goto(issued["scan_url"])  # said before anyone is asked to log in
    expect(page.locator("main").get_by_role("heading", name="无法打开合同")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("过期")
    # The building table released the unit.
    table = server.http.get(f"/api/v1/public/buildings/{server.world['building']['id']}/units")
    assert {u["room_no"]: u["status"] for u in table.json()["units"]}["302"] == "available"


def test_pages_are_served_from_the_package(server: Server) -> None:
    index = server.http.get("/miniapp/")
    assert index.status_code == 200
    assert "网签" in index.text and "app.js" in index.text
    assert "https://" not in index.text  # nothing from the internet
    assert index.text.index("qr-decode.js") < index.text.index("app.js")
    for name in ("app.js", "app.css", "qr-decode.js"):
        assert server.http.get(f"/miniapp/{name}").status_code == 200


def test_a_failed_face_check_can_be_retried(server: Server, phone_page: Any) -> None:
    expect = _expect
    wang = server.person("王五")
    page = phone_page()
    page.goto(f"{server.base}/miniapp/")
    page.fill("#wx-user", wang["phone"])
    page.get_by_role("button", name="微信一键登录").click()
    page.fill("#phone", wang["phone"])
    before = server.seen(wang["phone"])
    page.get_by_role("button", name="获取验证码").click()
    page.fill("#code", server.next_code(wang["phone"], before))
    page.get_by_role("button", name="绑定").click()
    expect(page.locator("main").get_by_role("heading", name="签约步骤")).to_be_visible()
    page.get_by_role("link", name="2. 个人信息授权").click()
    journey.real_name(page, wang)

    journey.face_check(page, passes=False)
    expect(page.locator("#face-msg")).to_contain_text("人脸核身未通过（人脸比对不一致）")
    journey.face_check(page)
    expect(page.locator("main").get_by_role("heading", name="签约步骤")).to_be_visible()
    expect(page.locator("main")).to_contain_text("已实名并通过人脸核身")


def _download_the_pdf(page: Any, server: Server, number: str) -> None:
    """The buyer keeps the signed PDF: every signature and the time-stamp hold."""
    from signing.certificates import load_root_certificate
    from signing.pdf import verify_pdf_sync

    with page.expect_download() as download_info:
        page.get_by_role("button", name="下载签署版合同 PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"{number}.pdf"
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    _expect(page.locator("#pdf-saved")).to_contain_text(number)
    root = load_root_certificate((server.data_dir / "keystore" / "root.crt.pem").read_bytes())
    report = verify_pdf_sync(pdf, root)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [s.field for s in report.signatures][:4] == ["buyer-1", "buyer-2", "seal", "platform"]
    if os.environ.get("WANGQIAN_DOCS_SCREENSHOT"):  # the README's pictures of the PDF
        _pdf_pages_for_docs(pdf)


def _pdf_pages_for_docs(pdf: bytes) -> None:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "contract.pdf"
        source.write_bytes(pdf)
        pages = subprocess.run(
            ["pdfinfo", str(source)], capture_output=True, text=True, check=True
        ).stdout
        last = int(re.search(r"^Pages:\s+(\d+)", pages, re.M).group(1))  # type: ignore[union-attr]
        for page, name in ((1, "contract-first-page"), (last, "contract-signature-page")):
            subprocess.run(
                ["pdftoppm", "-png", "-r", "70", "-f", str(page), "-l", str(page),
                 "-singlefile", str(source), str(ROOT / "docs" / name)],
                check=True,
            )  # fmt: skip
