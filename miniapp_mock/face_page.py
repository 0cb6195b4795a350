"""The mock face check's H5 page (shown by ``miniapp_mock.faceid``)."""

from __future__ import annotations

import html


def _mask(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail:]


_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>人脸核身（模拟）</title>
<style>
 body {{ font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
        margin: 0; padding: 24px; background: #f5f6f7; color: #222; }}
 .card {{ background: #fff; border-radius: 12px; padding: 20px; max-width: 420px;
         margin: 0 auto; box-shadow: 0 1px 4px rgba(0,0,0,.08); }}
 h1 {{ font-size: 20px; margin: 0 0 12px; }}
 .face {{ width: 160px; height: 160px; border-radius: 50%; margin: 20px auto;
         border: 3px dashed #067a3e; display: flex; align-items: center;
         justify-content: center; color: #067a3e; }}
 p {{ line-height: 1.6; }}
 .note {{ color: #5c6370; font-size: 13px; }}
 .warn {{ color: #c0392b; font-size: 14px; }}
 button {{ display: block; width: 100%; padding: 14px; margin-top: 12px; font-size: 17px;
          border: 0; border-radius: 8px; }}
 .pass {{ background: #067a3e; color: #fff; }}
 .fail {{ background: #eee; color: #c0392b; }}
</style>
</head>
<body>
<div class="card">
<h1>人脸核身</h1>
<p>姓名：{name}<br>身份证号：{id_number}</p>
<div class="face">请正对屏幕</div>
{body}
<p class="note">这是模拟的人脸核身页面，仅用于演示和测试，不会采集任何图像。</p>
</div>
</body>
</html>
"""

_FORM = """{warning}<form method="post" action="page/complete">
<input type="hidden" name="biz_token" value="{token}">
<button class="pass" type="submit" name="result" value="pass">开始人脸核身</button>
<button class="fail" type="submit" name="result" value="fail">模拟核身失败</button>
</form>"""


def render_page(
    name: str | None, id_number: str = "", token: str = "", status: str = "",
    registered: bool = False,
) -> str:
    if name is None:
        return _PAGE.format(name="-", id_number="-",
                            body='<p class="warn">核身链接无效，请返回重新发起。</p>')
    if status == "pending":
        warning = "" if registered else (
            '<p class="warn">该身份未在模拟身份库中登记，核身将不通过。</p>')
        body = _FORM.format(warning=warning, token=html.escape(token))
    elif status == "expired":
        body = '<p class="warn">核身链接已过期，请返回重新发起。</p>'
    else:
        body = f'<p>核身已完成：{"通过" if status == "passed" else "未通过"}。</p>'
    return _PAGE.format(name=html.escape(_mask(name, 1, 0)),
                        id_number=html.escape(_mask(id_number, 4, 4)), body=body)


