"""Mock identity provider (name + ID number) and mock face verification."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import TestClient

from tests.miniapp_mock.helpers import ZHANG_ID, FakeClock

Client = TestClient[Litestar]
ID_AUTH = {"Authorization": "Bearer idcheck-key"}
FACE_AUTH = {"Authorization": "Bearer face-key"}
REDIRECT = "http://127.0.0.1:8000/miniapp/face-done?session=s1"


def idcheck(client: Client, name: str, id_number: str, headers: dict[str, str] = ID_AUTH) -> Any:
    return client.post(
        "/idcheck/verify", json={"name": name, "id_number": id_number}, headers=headers
    )


def test_idcheck_results(client: Client) -> None:
    answer = idcheck(client, "张三", ZHANG_ID).json()
    assert answer["result"] == "match" and answer["request_id"]
    assert idcheck(client, "张三", ZHANG_ID.lower()).json()["result"] == "match"
    assert idcheck(client, "张四", ZHANG_ID).json()["result"] == "mismatch"
    assert idcheck(client, "张三", "440101199001011234").json()["result"] == "not_found"


def test_idcheck_needs_the_key(client: Client) -> None:
    response = idcheck(client, "张三", ZHANG_ID, {"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert idcheck(client, "张三", ZHANG_ID, {}).status_code == 401


def test_people_can_be_added(client: Client) -> None:
    new = "440101199001011234"
    response = client.post(
        "/idcheck/people", json={"name": "王五", "id_number": new}, headers=ID_AUTH
    )
    assert response.status_code == 200
    assert idcheck(client, "王五", new).json()["result"] == "match"
    refused = client.post("/idcheck/people", json={"name": "x", "id_number": "1"})
    assert refused.status_code == 401


def start_face(
    client: Client, name: str = "张三", id_number: str = ZHANG_ID, redirect_url: str = REDIRECT
) -> dict[str, Any]:
    response = client.post(
        "/face/detect-auth",
        headers=FACE_AUTH,
        json={"id_number": id_number, "name": name, "redirect_url": redirect_url},
    )
    assert response.status_code == 200, response.text
    return response.json()


def detect_info(client: Client, token: str) -> dict[str, Any]:
    response = client.post("/face/get-detect-info", json={"biz_token": token}, headers=FACE_AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def press(client: Client, token: str, result: str) -> Any:
    return client.post(
        "/face/page/complete", data={"biz_token": token, "result": result}, follow_redirects=False
    )


def test_face_pass_flow(client: Client) -> None:
    started = start_face(client)
    token = started["biz_token"]
    assert started["url"] == f"http://127.0.0.1:8000/mock/face/page?biz_token={token}"
    assert detect_info(client, token)["status"] == "pending"

    page = client.get("/face/page", params={"biz_token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "开始人脸核身" in page.text and 'name="viewport"' in page.text
    assert ZHANG_ID not in page.text  # masked on the page

    response = press(client, token, "pass")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.netloc == "127.0.0.1:8000" and location.path == "/miniapp/face-done"
    assert parse_qs(location.query) == {"session": ["s1"], "biz_token": [token]}

    info = detect_info(client, token)
    assert info == {"status": "passed", "id_number": ZHANG_ID, "name": "张三", "similarity": 93.5}


def test_face_fail_button(client: Client) -> None:
    token = start_face(client)["biz_token"]
    assert press(client, token, "fail").status_code == 303
    info = detect_info(client, token)
    assert info["status"] == "failed" and info["similarity"] < 70


def test_first_result_wins(client: Client) -> None:
    token = start_face(client)["biz_token"]
    press(client, token, "fail")
    press(client, token, "pass")
    assert detect_info(client, token)["status"] == "failed"
    assert "未通过" in client.get("/face/page", params={"biz_token": token}).text


def test_unregistered_person_cannot_pass(client: Client) -> None:
    token = start_face(client, name="张四")["biz_token"]
    assert "未在模拟身份库中登记" in client.get("/face/page", params={"biz_token": token}).text
    press(client, token, "pass")
    assert detect_info(client, token)["status"] == "failed"


def test_token_expires_after_seven_minutes(client: Client, clock: FakeClock) -> None:
    token = start_face(client)["biz_token"]
    clock.advance(minutes=6, seconds=59)
    assert detect_info(client, token)["status"] == "pending"
    clock.advance(seconds=1)
    assert detect_info(client, token)["status"] == "expired"
    assert "已过期" in client.get("/face/page", params={"biz_token": token}).text
    # Pressing pass after expiry records nothing.
    assert press(client, token, "pass").status_code == 303
    assert detect_info(client, token)["status"] == "expired"


def test_result_completed_in_time_survives_expiry(client: Client, clock: FakeClock) -> None:
    token = start_face(client)["biz_token"]
    press(client, token, "pass")
    clock.advance(minutes=30)
    assert detect_info(client, token)["status"] == "passed"


def test_face_api_needs_the_key(client: Client) -> None:
    response = client.post(
        "/face/detect-auth", json={"id_number": ZHANG_ID, "name": "张三", "redirect_url": REDIRECT}
    )
    assert response.status_code == 401
    token = start_face(client)["biz_token"]
    response = client.post(
        "/face/get-detect-info",
        json={"biz_token": token},
        headers={"Authorization": "Bearer idcheck-key"},
    )
    assert response.status_code == 401


def test_unknown_token(client: Client) -> None:
    response = client.post("/face/get-detect-info", json={"biz_token": "nope"}, headers=FACE_AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "BIZ_TOKEN_INVALID"
    assert client.get("/face/page", params={"biz_token": "nope"}).status_code == 404
    assert press(client, "nope", "pass").status_code == 404


def test_redirect_must_go_back_to_our_site(client: Client) -> None:
    for url in ("https://evil.example/steal", "javascript:alert(1)", "/relative"):
        response = client.post(
            "/face/detect-auth",
            headers=FACE_AUTH,
            json={"id_number": ZHANG_ID, "name": "张三", "redirect_url": url},
        )
        assert response.status_code == 400, url
        assert response.json()["code"] == "REDIRECT_URL_INVALID"


def test_client_cannot_set_the_result_through_the_api(client: Client) -> None:
    token = start_face(client)["biz_token"]
    response = client.post(
        "/face/get-detect-info", headers=FACE_AUTH, json={"biz_token": token, "status": "passed"}
    )
    assert response.status_code == 400
    assert detect_info(client, token)["status"] == "pending"
