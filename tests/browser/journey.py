"""Steps of the signing journey shared by the browser tests (issue 19): the separate
consent before real-name, the face check in the same tab that comes back by itself, the
sign button that waits for the end of the text, and signing through the consent box and
the confirmation sheet."""

from __future__ import annotations

import re
from typing import Any


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def heading(page: Any, name: str) -> Any:
    return page.locator("main").get_by_role("heading", name=name, level=2)


def consent(page: Any) -> None:
    """个人信息授权: the notice, then its own 同意 (before the ID number is asked for)."""
    expect(heading(page, "个人信息收集与使用告知")).to_be_visible()
    expect(page.locator("#pi-notice")).to_contain_text("保存多久")
    page.get_by_role("button", name="同意", exact=True).click()


def real_name(page: Any, person: dict[str, Any]) -> None:
    """From the consent page (when asked) through 实名认证 to the face check page."""
    consenting = heading(page, "个人信息收集与使用告知")
    expect(consenting.or_(heading(page, "实名认证"))).to_be_visible()
    if consenting.is_visible():
        consent(page)
    expect(heading(page, "实名认证")).to_be_visible()
    page.fill("#name", person["name"])
    page.fill("#id-number", person["id_number"])
    page.get_by_role("button", name="提交认证").click()


def face_check(page: Any, *, passes: bool = True) -> None:
    """The provider's page opens in this same tab; back from it, the result shows without
    a tap (the page asks the server by itself)."""
    expect(heading(page, "人脸核身")).to_be_visible()
    page.get_by_role("button", name="开始人脸核身").click()
    page.wait_for_url(re.compile(r"/mock/face/"))
    page.get_by_role("button", name="开始人脸核身" if passes else "模拟核身失败").click()
    page.wait_for_url(re.compile(r"/miniapp/#/face"))
    if passes:
        expect(page.locator("#face-passed")).to_have_text("人脸核身通过。")
    else:
        expect(page.locator("#face-msg")).to_contain_text("人脸核身未通过")


def to_sign(page: Any) -> None:
    """Read to the end of the contract text: then the sign button is active."""
    button = page.locator("#to-sign")
    expect(button).to_be_disabled()
    page.locator("#text-end").scroll_into_view_if_needed()
    expect(button).to_be_enabled()
    expect(button).to_have_text("我已阅读，去签署")
    button.click()
    expect(heading(page, "短信验证签署")).to_be_visible()


def sign_with_code(page: Any, code: str, *, timeout: float = 30_000) -> None:
    """Tick the consent, type the code, confirm on the sheet."""
    page.locator("#agree").check()
    page.fill("#sign-code", code)
    page.locator("#sign").click()
    sheet = page.get_by_role("dialog", name="签署确认")
    expect(sheet).to_be_visible()
    expect(sheet.locator("#confirm-legal")).to_contain_text("签署后具有法律效力")
    sheet.get_by_role("button", name="确认签署").click()
    expect(sheet).to_have_count(0, timeout=timeout)
