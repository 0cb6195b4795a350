"""The real server (granian, `wangqian serve`) with the demo world, for the tests that
need a running process: the schema fuzz run and the kill -9 crash test.

SQLite in a temporary data directory by default; with ``WANGQIAN_TEST_DATABASE_URL``
(PostgreSQL) a database of the run's own, made beside that one and dropped at the end.
Only loopback is ever used.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("WANGQIAN_TEST_DATABASE_URL", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(url: str, statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@contextmanager
def own_database() -> Iterator[str]:
    """'' for SQLite; on PostgreSQL the URL of a fresh database, dropped afterwards."""
    if not PG_URL:
        yield ""
        return
    base = make_url(PG_URL)
    name = f"{base.database}_server_{os.getpid()}_{secrets.token_hex(3)}"
    _admin(PG_URL, f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningServer:
    data_dir: Path
    database_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
        env.update(
            WANGQIAN_MOCKS_ENABLED="true",
            WANGQIAN_PUBLIC_BASE_URL=self.base,
            WANGQIAN_LOG_LEVEL="WARNING",
            WANGQIAN_OUTBOX_POLL_SECONDS="0.2",
        )
        if self.database_url:
            env["WANGQIAN_DATABASE_URL"] = self.database_url
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args, "--data-dir", str(self.data_dir)],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def load_demo(self) -> dict[str, Any]:
        done = self.cli("demo", "--no-serve")
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return json.loads((self.data_dir / "demo.json").read_text())

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = (self.data_dir / f"server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # kill -9 reaches granian's workers too
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + self.log()[-3000:])
            time.sleep(0.1)

    def log(self) -> str:
        return (self.data_dir / f"server-{self.starts}.log").read_text(errors="replace")

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no shutdown hook runs."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def login(http: httpx.Client, phone: str, **extra: Any) -> str:
    """A bearer token through the mock SMS inbox (the newest code sent to ``phone``)."""
    sent = _auth_post(http, "/api/v1/auth/sms/send", {"phone": phone})
    assert sent.status_code == 200, sent.text
    code = http.get("/mock/sms/inbox", params={"phone": phone}).json()[0]["params"]["code"]
    answer = _auth_post(http, "/api/v1/auth/sms/verify", {"phone": phone, "code": code, **extra})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _auth_post(http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    """Every login comes from one loopback address: past its limit a minute, wait as told."""
    answer = http.post(path, json=body)
    if answer.status_code == 429 and answer.json().get("limit") == "auth-ip":
        time.sleep(min(int(answer.headers.get("Retry-After", "1")), 61))
        answer = http.post(path, json=body)
    return answer
