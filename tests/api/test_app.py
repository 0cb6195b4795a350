"""The service shell: health, readiness, docs, and problem+json for what no route handles."""

from __future__ import annotations

import gc

import httpx
import pytest

from api.app import create_app_from_env
from api.contracts.pdfs import contract_font
from api.settings import Settings
from signing.pdf_fonts import PdfFont
from tests.conftest import TEST_SECRET

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


def test_the_server_factory_puts_what_it_loaded_out_of_the_collectors_sight(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full collections walked every module and route of the app each time: the slowest
    answers under load. The factory granian calls freezes them, and starts the worker's
    typesetter."""
    started: list[PdfFont] = []
    monkeypatch.setattr("api.app.start_typesetter", started.append)
    monkeypatch.setenv("WANGQIAN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WANGQIAN_SECRET_KEY", TEST_SECRET)
    if settings.database_url:
        monkeypatch.setenv("WANGQIAN_DATABASE_URL", settings.database_url)
    gc.unfreeze()
    try:
        app = create_app_from_env()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the modules, the routes, the app itself
        assert app is not None
        assert started == [contract_font(settings)]
    finally:
        gc.unfreeze()
