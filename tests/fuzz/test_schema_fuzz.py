"""Schema fuzzing (schemathesis) against the running server (granian, the demo world, the
configured database): every documented operation, with a citizen's, a sales agent's, a
seal keeper's, a company admin's, a regulator's or no login. No answer may be a 5xx, and
every answer must match what the schema documents (4xx answers are problem+json).

Bounded: ``WANGQIAN_FUZZ_EXAMPLES`` cases per operation (default 15: about 1,500 in all).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.running_server import RunningServer, login, own_database

# What "matches the documented schema" means here. Left out: positive_data_acceptance
# (a schema-valid request may still break a business rule: 409/422 are answers, not bugs)
# and negative_data_rejection (some refusals come after the schema: 404 for an unknown id).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = int(os.environ.get("WANGQIAN_FUZZ_EXAMPLES", "15"))
ROLES = ("sales_agent", "seal_keeper", "company_admin", "regulator")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with own_database() as database_url:
        running = RunningServer(tmp_path_factory.mktemp("fuzz-server"), database_url)
        running.load_demo()
        running.start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def tokens(server: RunningServer) -> list[str | None]:
    import json

    world = json.loads((Path(server.data_dir) / "demo.json").read_text())
    people = world["people"]
    with httpx.Client(base_url=server.base, timeout=30) as http:
        found: list[str | None] = [None]
        citizen = next(p for p in people if p["name"] == "张三")
        found.append(login(http, citizen["phone"]))
        for role in ROLES:
            person = next(p for p in people if p.get("role") == role)
            found.append(login(http, person["phone"]))
    return found


def _token_for(case: Case, tokens: list[str | None], n: int) -> str | None:
    """Each operation meets every kind of caller over its cases, in turn."""
    seed = f"{case.method} {case.path}".encode()
    first = int.from_bytes(hashlib.sha256(seed).digest()[:2], "big")
    return tokens[(first + n) % len(tokens)]


def _fuzz(operation: Any, server: RunningServer, tokens: list[str | None]) -> tuple[int, str]:
    """Run one operation's cases; how many, and the first failure ('' when none)."""
    calls = [0]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Case) -> None:
        calls[0] += 1
        token = _token_for(case, tokens, calls[0])
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(base_url=server.base, headers=headers, timeout=30)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except BaseException as failed:  # schemathesis' FailureGroup is a BaseExceptionGroup
        if isinstance(failed, KeyboardInterrupt):
            raise
        return calls[0], f"{operation.label}: {str(failed)[:1500]}"
    return calls[0], ""


def test_no_operation_answers_5xx_or_off_schema(
    server: RunningServer, tokens: list[str | None]
) -> None:
    api = schemathesis.openapi.from_url(f"{server.base}/api/docs/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    failures: list[str] = []
    cases = 0
    for operation in operations:
        ran, failure = _fuzz(operation, server, tokens)
        cases += ran
        if failure:
            failures.append(failure)
    print(f"schema fuzz: {cases} cases over {len(operations)} operations")
    assert not failures, "\n\n".join(failures)
