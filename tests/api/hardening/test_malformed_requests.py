"""Finding 5 and part of 11 of the outside review: bodies and paths no parser can hold
are the client's error (400/422 problem+json), logged in one line, never a 500."""

from __future__ import annotations

import logging

import httpx
import pytest

JSON = {"content-type": "application/json"}
ANONYMOUS_POSTS = ["/api/v1/auth/sms/send", "/api/v1/auth/sms/verify", "/api/v1/auth/wechat"]


@pytest.mark.parametrize("path", ANONYMOUS_POSTS)
@pytest.mark.parametrize(
    "body",
    [b"[" * 3000, b'{"phone": ' + b"[" * 3000, b"{" * 3000, b'{"phone": "\xff\xfe"}', b"\xff"],
    ids=["arrays", "nested-field", "objects", "utf8-in-string", "utf8"],
)
async def test_undecodable_bodies_are_problems_logged_in_one_line(
    mock_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    caplog.set_level(logging.INFO, logger="wangqian")
    response = await mock_client.post(path, content=body, headers=JSON)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] in ("bad_request", "malformed_json")
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert len([r for r in caplog.records if r.name != "wangqian.access"]) <= 1


async def test_deep_nesting_with_an_idempotency_key_is_not_stored(
    mock_client: httpx.AsyncClient,
) -> None:
    headers = {**JSON, "Idempotency-Key": "nested-1"}
    for _ in range(2):
        response = await mock_client.post(
            "/api/v1/auth/sms/send", content=b"[" * 3000, headers=headers
        )
        assert response.status_code == 422
        assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize("path", ["/miniapp/%00", "/miniapp/a%00b.js"])
async def test_a_nul_byte_in_the_path_is_a_400(
    mock_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    response = await mock_client.get(path)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert not [r for r in caplog.records if r.exc_info]


async def test_nul_and_bad_bytes_in_the_public_query_are_no_500(
    mock_client: httpx.AsyncClient,
) -> None:
    # PostgreSQL refuses NUL in text: the value must be refused or answered before the query.
    for query in ({"number": "\x00", "password": "\x00"}, {"number": "\udcff", "password": "1"}):
        response = await mock_client.get(
            "/api/v1/public/verify",
            params={k: v.encode("utf-8", "surrogateescape") for k, v in query.items()},
        )
        assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "not_authenticated"),
        ("Basic eDp5", "not_authenticated"),
        ("Bearer not-a-session", "session_invalid"),
    ],
)
async def test_a_refused_login_is_logged_as_the_401_it_answers(
    mock_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    authorization: str | None,
    code: str,
) -> None:
    caplog.set_level(logging.INFO, logger="wangqian")
    headers = {"x-request-id": "abcdef0123456789"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await mock_client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401 and response.json()["code"] == code
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "abcdef0123456789"
    logged = [r for r in caplog.records if r.name == "wangqian.access"]
    assert [r.getMessage() for r in logged] == ["GET /api/v1/me 401"]
    assert not [r for r in caplog.records if r.exc_info]
