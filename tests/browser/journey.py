"""Steps of the signing journey shared by the browser tests (issue 19): the separate
consent before real-name, the face check in the same tab that comes back by itself, the
sign button that waits for the end of the text, and signing through the consent box and
the confirmation sheet."""

from __future__ import annotations

import re
from typing import Any

RAW_CODE = re.compile(r"[a-z]+_[a-z_]*[a-z]")

# Measured in the page: every element with text of its own, its colour against the first
# opaque background behind it (WCAG 2.2 contrast ratio); every target a finger taps.
AUDIT = """() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor); if (c && c[3] >= 0.99) return c; }
    return [255, 255, 255, 1]; };
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' && Number(s.opacity) > 0.05; };
  const low = [], small = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (['SCRIPT', 'STYLE', 'TITLE'].includes(el.tagName) || !visible(el)) continue;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (own) {
      const fg = parse(getComputedStyle(el).color), bg = background(el);
      const a = lum(fg), b = lum(bg); const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) low.push(el.tagName + ' "' + el.textContent.trim().slice(0, 20) + '" ' + ratio.toFixed(2));
    }
  }
  const targets = document.body.querySelectorAll('a, button, select, textarea, summary, label.check, ' +
    'input:not([type=hidden]):not([type=checkbox]):not([type=radio]):not([type=file])');
  for (const el of targets) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 44 - 0.5 || r.height < 44 - 0.5) small.push(el.tagName + ' "' + el.textContent.trim().slice(0, 20) + '" ' +
      Math.round(r.width) + 'x' + Math.round(r.height));
  }
  return { low, small, text: document.body.innerText };
}"""


def audit(page: Any, name: str) -> None:
    """Readable, tappable, Chinese: contrast of at least 4.5:1 (WCAG 2.2 AA), targets of at
    least 44×44 px, no raw code or snake_case word, measured on the page as it is now."""
    found = page.evaluate(AUDIT)
    assert found["low"] == [], f"{name}: contrast below 4.5:1: {found['low']}"
    assert found["small"] == [], f"{name}: targets below 44×44: {found['small']}"
    raw = RAW_CODE.findall(found["text"])
    assert raw == [], f"{name}: raw codes on the page: {raw}"
    assert "undefined" not in found["text"] and "null" not in found["text"], name


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
    # On commit, not on load: the result shows as soon as the page asks, for 1.5 s.
    page.wait_for_url(re.compile(r"/miniapp/#/face"), wait_until="commit")
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
