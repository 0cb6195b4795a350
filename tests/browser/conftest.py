"""Browser tests: the real app under granian, Debian's Chromium driven by Playwright.

The server runs on SQLite in a temporary data directory with the demo world loaded and
mocks enabled (so the H5 pages are at /miniapp/). In CI (``CI=true``) a missing Chromium
or Playwright fails the run instead of skipping it. The PostgreSQL pass skips these tests:
the server they start always uses its own SQLite data directory, so that pass would only
repeat the SQLite one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("WANGQIAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 375, "height": 812},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
ROOT = Path(__file__).resolve().parents[2]
FAILURES = Path(
    os.environ.get("WANGQIAN_BROWSER_ARTIFACTS")
    or Path(tempfile.gettempdir()) / "wangqian-browser-failures"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# Module scope, not session: Playwright's sync API runs an event loop in this thread while
# it is open, which would break the asyncio tests that pytest runs after these.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if os.environ.get("WANGQIAN_TEST_DATABASE_URL"):
        pytest.skip("browser tests run in the SQLite pass (their server uses its own SQLite)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    base: str
    world: dict[str, Any]
    http: httpx.Client
    data_dir: Path
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def let_expire(self, order_id: str) -> None:
        """Time passes for one order: a real server's clock cannot be moved, so its expiry
        is set into the past in the server's database (the server expires it on access)."""
        with sqlite3.connect(self.data_dir / "wangqian.db") as db:
            db.execute("PRAGMA busy_timeout=10000")
            changed = db.execute(
                "UPDATE contract_orders SET expires_at = '2000-01-01 00:00:00.000000' WHERE id = ?",
                (uuid.UUID(order_id).hex,),
            ).rowcount
        assert changed == 1

    def person(self, name: str) -> dict[str, Any]:
        return next(p for p in self.world["people"] if p["name"] == name)

    def role(self, role: str) -> dict[str, Any]:
        return next(p for p in self.world["people"] if p.get("role") == role)

    def inbox(self, phone: str) -> list[dict[str, Any]]:
        response = self.http.get("/mock/sms/inbox", params={"phone": phone})
        assert response.status_code == 200, response.text
        return response.json()

    def next_code(self, phone: str, after: set[str], timeout: float = 10) -> str:
        """The code of the first SMS to `phone` not in `after` (message ids seen before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.inbox(phone):
                if message["message_id"] not in after and "code" in message["params"]:
                    return message["params"]["code"]
            time.sleep(0.1)
        raise AssertionError(f"no new SMS code for {phone}")

    def seen(self, phone: str) -> set[str]:
        return {m["message_id"] for m in self.inbox(phone)}

    def staff_login(self, phone: str) -> dict[str, str]:
        """Bearer headers of a staff member (one login per run: codes are rate limited)."""
        if phone in self.tokens:
            return self.tokens[phone]
        before = self.seen(phone)
        sent = self.http.post("/api/v1/auth/sms/send", json={"phone": phone})
        assert sent.status_code == 200, sent.text
        code = self.next_code(phone, before)
        answer = self.http.post("/api/v1/auth/sms/verify", json={"phone": phone, "code": code})
        assert answer.status_code == 200, answer.text
        self.tokens[phone] = {"Authorization": f"Bearer {answer.json()['token']}"}
        return self.tokens[phone]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chromium: Any) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("browser-server")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
    env.update(
        WANGQIAN_MOCKS_ENABLED="true", WANGQIAN_PUBLIC_BASE_URL=base, WANGQIAN_LOG_LEVEL="WARNING"
    )
    cli = [sys.executable, "-m", "api.cli"]
    subprocess.run(
        [*cli, "demo", "--no-serve", "--data-dir", str(data_dir)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + (data_dir / "server.log").read_text())
            time.sleep(0.2)
        world = json.loads((data_dir / "demo.json").read_text())
        with httpx.Client(base_url=base, timeout=20) as http:
            yield Server(base, world, http, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def phone_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """A factory of pages in fresh phone-sized contexts; screenshots of all of them are
    saved to ``FAILURES`` when the test fails."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def new_page() -> Any:
        context = chromium.new_context(**PHONE)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield new_page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^0-9A-Za-z_.-]+", "_", request.node.nodeid)
        for index, page in enumerate(pages):
            target = FAILURES / f"{stem}-{index}.png"
            try:
                page.screenshot(path=str(target), full_page=True)
                print(f"screenshot saved: {target}")
            except Exception as error:  # a crashed page must not hide the test's failure
                print(f"screenshot failed for {target}: {error}")
    for context in contexts:
        context.close()
