"""Steps shared by the identity tests, all over HTTP against the app with mocks enabled."""

from __future__ import annotations

from typing import Any

import httpx

from signing.gb_codes import resident_id_check_char


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def resident_id(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


async def inbox(client: httpx.AsyncClient, phone: str) -> list[dict[str, Any]]:
    response = await client.get("/mock/sms/inbox", params={"phone": phone})
    assert response.status_code == 200
    return response.json()


async def send_code(client: httpx.AsyncClient, phone: str) -> str:
    """Ask for a code and read it from the mock SMS inbox."""
    response = await client.post("/api/v1/auth/sms/send", json={"phone": phone})
    assert response.status_code == 200, response.text
    return (await inbox(client, phone))[0]["params"]["code"]


async def verify(client: httpx.AsyncClient, phone: str, code: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/sms/verify", json={"phone": phone, "code": code, **extra}
    )


async def login_phone(client: httpx.AsyncClient, phone: str, **extra: Any) -> str:
    code = await send_code(client, phone)
    response = await verify(client, phone, code, **extra)
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def wechat_code(client: httpx.AsyncClient, user: str) -> str:
    """The mini program's wx.login(), played by the mock."""
    response = await client.post("/mock/wechat/login", json={"user": user})
    assert response.status_code == 200
    return response.json()["code"]


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def agree_to_pi_notice(client: httpx.AsyncClient, token: str) -> None:
    """The separate consent to the personal-information notice, which real-name and the
    face check require first."""
    notice = await client.get("/api/v1/me/pi-notice", headers=bearer(token))
    agreed = await client.post(
        "/api/v1/me/pi-consent", json={"version": notice.json()["version"]}, headers=bearer(token)
    )
    assert agreed.status_code == 200, agreed.text


def wrong(code: str) -> str:
    """A well-formed code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"
