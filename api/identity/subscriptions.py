"""WeChat subscribe messages (订阅消息): what a citizen allowed in the mini program, one
message per "accept" (WeChat's one-time subscriptions), used up by the outbox.

The mini program knows WeChat's template ids (issued in its console, from settings);
consents are kept by our template key, so the outbox needs no WeChat configuration.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.db.engine import insert_into
from api.identity import schemas
from api.identity.models import (
    Citizen,
    WeChatSubscription,
)
from api.identity.principal import Principal
from api.identity.profile import caller_citizen
from notifications.templates import TEMPLATES
from notifications.wechat_templates import WeChatTemplate

# Consents a citizen can bank per template: enough for a purchase's messages, and a bound
# on what a script tapping "accept" can pile up.
MAX_SUBSCRIPTION_GRANTS = 20


_SUBSCRIPTION_ANSWERS = {"accept", "reject", "ban", "filter"}


def subscribable_templates(templates: Mapping[str, WeChatTemplate]) -> dict[str, str]:
    """WeChat template id -> our template key, for every message a citizen may receive
    over WeChat with this mini program."""
    return {t.template_id: key for key, t in templates.items()}


async def wechat_subscriptions(
    session: AsyncSession, principal: Principal, templates: Mapping[str, WeChatTemplate]
) -> schemas.Subscriptions:
    """The messages the mini program can ask to subscribe to, with what is left of each."""
    citizen = await caller_citizen(session, principal)
    remaining: dict[str, int] = {}
    if citizen.wechat_openid is not None:
        rows = await session.execute(
            select(WeChatSubscription.template_id, WeChatSubscription.remaining).where(
                WeChatSubscription.openid == citizen.wechat_openid
            )
        )
        remaining = {key: count for key, count in rows.all()}
    return schemas.Subscriptions(
        subscriptions=[
            schemas.Subscription(
                template_id=tid, key=key, title=TEMPLATES[key].title,
                remaining=remaining.get(key, 0),
            )
            for tid, key in subscribable_templates(templates).items()
        ]
    )


async def record_wechat_subscriptions(
    session: AsyncSession,
    principal: Principal,
    templates: Mapping[str, WeChatTemplate],
    *,
    results: dict[str, str],
    now: datetime,
) -> schemas.Subscriptions:
    """Record what the citizen answered in wx.requestSubscribeMessage: each "accept" allows
    one more message of that template, "ban" turns it off, "reject" and "filter" leave what
    was allowed before."""
    citizen = await caller_citizen(session, principal)
    if citizen.wechat_openid is None:
        raise DomainError("wechat_not_bound", "请先用微信登录小程序，再订阅消息提醒。")
    known = subscribable_templates(templates)
    unknown = sorted(set(results) - set(known))
    if unknown:
        raise DomainError("subscription_template_unknown", f"未知的消息模板：{unknown[0]}。")
    if any(answer not in _SUBSCRIPTION_ANSWERS for answer in results.values()):
        raise DomainError(
            "subscription_result_invalid", "订阅结果只能是 accept、reject、ban 或 filter。"
        )
    for template_id, answer in sorted(results.items()):
        if answer not in {"accept", "ban"}:
            continue
        accepted = answer == "accept"
        statement = insert_into(session, WeChatSubscription).values(
            id=uuid.uuid4(),
            openid=citizen.wechat_openid,
            template_id=known[template_id],
            remaining=1 if accepted else 0,
            updated_at=now,
        )
        # One statement, so two taps recorded at once both count.
        more = case(
            (WeChatSubscription.remaining >= MAX_SUBSCRIPTION_GRANTS, MAX_SUBSCRIPTION_GRANTS),
            else_=WeChatSubscription.remaining + 1,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["openid", "template_id"],
                set_={"remaining": more if accepted else 0, "updated_at": now},
            )
        )
    return await wechat_subscriptions(session, principal, templates)


async def wechat_logins(session: AsyncSession, phone_indexes: set[str]) -> set[str]:
    """Which of these phones (``ServiceKeys.phone_index``) a citizen holds who logged in
    with WeChat: only they can have a subscribe message to take."""
    return set(
        await session.scalars(
            select(Citizen.phone_index).where(
                Citizen.phone_index.in_(phone_indexes), Citizen.wechat_openid.is_not(None)
            )
        )
    )


async def take_wechat_subscription(
    session: AsyncSession, *, phone_index: str, template: str, now: datetime
) -> str | None:
    """The openid to send one ``template`` message to the citizen who holds the phone
    (``ServiceKeys.phone_index``),
    using up one of their consents; None when they have none left (or no WeChat login)."""
    openid = await session.scalar(
        select(Citizen.wechat_openid).where(
            Citizen.phone_index == phone_index, Citizen.wechat_openid.is_not(None)
        )
    )
    if openid is None:
        return None
    taken = await session.execute(
        update(WeChatSubscription)
        .where(
            WeChatSubscription.openid == openid,
            WeChatSubscription.template_id == template,
            WeChatSubscription.remaining > 0,
        )
        .values(remaining=WeChatSubscription.remaining - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return openid if taken.rowcount == 1 else None
