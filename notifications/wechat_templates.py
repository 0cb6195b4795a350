"""Subscribe messages (订阅消息) of the mini program: WeChat's template ids and data keys,
issued per mini program in its console, mapped onto our templates from settings; values
written in WeChat's types (a value of another type is refused with 47003 by WeChat)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from notifications.templates import TEMPLATES, TemplateError, text_values


@dataclass(frozen=True)
class WeChatTemplate:
    """One of our templates as a subscribe message of this mini program: WeChat's template
    id and its data keys mapped to our parameter names."""

    key: str
    template_id: str
    page: str
    data: Mapping[str, str]


class _WeChatRef(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    data: dict[str, str] | None = None
    page: str | None = None


_WECHAT_TIME = re.compile(
    r"([0-9]{4}年)?([0-9]{1,2}月[0-9]{1,2}日 ?)?([01]?[0-9]|2[0-3]):[0-5][0-9]"
)
_WECHAT_TYPES = ("thing", "amount", "time", "character_string", "number", "phrase", "date")


def parse_wechat_templates(raw: str) -> dict[str, WeChatTemplate]:
    """``WANGQIAN_WECHAT_TEMPLATES``: a JSON object from our template keys to
    ``{"id": "<template id from the console>", "data": {"thing1": "estate", ...}}``;
    ``data`` and ``page`` default to the template's suggested mapping. Raises
    ``ValueError`` on anything that could not be sent."""
    if not raw.strip():
        return {}
    try:
        decoded = msgspec.json.decode(raw, type=dict[str, _WeChatRef])
    except msgspec.DecodeError as exc:
        raise ValueError(f"WANGQIAN_WECHAT_TEMPLATES is not valid: {exc}") from None
    configured = {}
    for key, ref in decoded.items():
        template = TEMPLATES.get(key)
        if template is None or template.wechat is None or template.urgent:
            raise ValueError(f"WANGQIAN_WECHAT_TEMPLATES: {key!r} is not sent over WeChat")
        data = ref.data if ref.data is not None else dict(template.wechat.data)
        known = set(text_values(msgspec.convert(dict(template.sample), template.params)))
        for wechat_key, name in data.items():
            kind = re.sub(r"[0-9]+$", "", wechat_key)
            if kind not in _WECHAT_TYPES or name not in known:
                raise ValueError(f"WANGQIAN_WECHAT_TEMPLATES[{key!r}]: bad field {wechat_key}")
        configured[key] = WeChatTemplate(
            key, ref.id.strip(), ref.page or template.wechat.page, dict(data)
        )
    return configured


def wechat_value(wechat_key: str, value: str) -> str:
    """A value as WeChat's type of this key takes it: ``thing`` at most 20 characters
    (shortened), ``amount`` a currency sign and digits, ``time`` 24-hour,
    ``character_string`` at most 32 letters, digits and symbols (refused otherwise)."""
    kind = re.sub(r"[0-9]+$", "", wechat_key)
    value = value.strip()
    if kind == "thing":
        return value[:20]
    if kind == "amount":
        if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", value):
            raise TemplateError(f"{wechat_key}: {value!r} is not an amount")
        return f"¥{value}"
    if kind == "time":
        # 24:00 (end of the day, as the seed's deadlines read) is 23:59 in 24-hour form.
        value = re.sub(r"\b24:00$", "23:59", value)
        if not _WECHAT_TIME.fullmatch(value):
            raise TemplateError(f"{wechat_key}: {value!r} is not a 24-hour time")
        return value
    if kind == "character_string" and not re.fullmatch(r"[A-Za-z0-9_\-]{1,32}", value):
        raise TemplateError(f"{wechat_key}: {value!r} is not a character_string")
    return value


def wechat_data(template: WeChatTemplate, values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"value": wechat_value(k, values[name])} for k, name in template.data.items()}
