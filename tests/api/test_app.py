"""The service shell: health, readiness, docs, and problem+json for what no route handles."""

from __future__ import annotations

import httpx

Client = httpx.AsyncClient


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_request_ids_are_echoed_or_made(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 16


async def test_openapi_is_served_without_external_assets(client: Client) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/v1/public/buildings/{building_id}/units" in page.text
    assert "<script" not in page.text  # renders on an offline government network
    schema = (await client.get("/api/docs/openapi.json")).json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/public/projects" in schema["paths"]


async def test_unknown_path_and_method_are_problems(client: Client) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "not_found"
    wrong = await client.delete("/api/v1/public/projects")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


async def test_mocks_are_absent_unless_enabled(client: Client) -> None:
    assert (await client.get("/mock/sms/inbox", params={"phone": "13900000001"})).status_code == 404
