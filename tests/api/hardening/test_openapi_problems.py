"""Fuzzing (issue 17): every documented operation lists its problem+json answers (4xx
answers were undocumented)."""

from __future__ import annotations

import httpx


async def test_every_operation_documents_its_problem_answers(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/docs/openapi.json")).json()
    assert schema["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "code",
        "detail",
    ]
    operations = [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "delete", "patch"}
    ]
    assert len(operations) > 90
    for method, path, operation in operations:
        for status in ("4XX", "503"):
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (method, path)
        # No plain-JSON 4xx left from the framework's defaults.
        assert not [c for c in operation["responses"] if c.startswith("4") and c != "4XX"]
