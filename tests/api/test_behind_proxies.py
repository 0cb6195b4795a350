"""Behind a load balancer the client is the address X-Forwarded-For names, and only when
the peer is a listed balancer: per-address rate limits count people, not the balancer, and
a client cannot pick its own address."""

from __future__ import annotations

from typing import Any

from api.app import behind_proxies


async def _client_seen(trusted: str, peer: str, forwarded: str | None) -> str:
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "client": (peer, 5000), "headers": headers, "scheme": "http"}
    await behind_proxies(inner, trusted)(scope, None, None)  # type: ignore[arg-type]
    return seen["client"][0]


async def test_the_listed_balancer_names_the_client() -> None:
    assert await _client_seen("10.88.0.0/24", "10.88.0.5", "203.0.113.7") == "203.0.113.7"
    # A chain: the last address not of a balancer is the client.
    assert (
        await _client_seen("10.88.0.0/24", "10.88.0.5", "198.51.100.1, 203.0.113.7")
        == "203.0.113.7"
    )


async def test_anyone_else_cannot_choose_an_address() -> None:
    assert await _client_seen("10.88.0.0/24", "203.0.113.9", "10.1.1.1") == "203.0.113.9"
    assert await _client_seen("", "10.88.0.5", "203.0.113.7") == "10.88.0.5"
