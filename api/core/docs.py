"""An API reference page rendered on the server from the OpenAPI schema.

City deployments often run on networks without internet access, where the usual
documentation UIs (which load their JavaScript from a CDN) show a blank page; this
renders plain HTML with no external assets. Swagger UI stays at /api/docs/swagger for
developers who have internet access.
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin

from api.core.problems import PROBLEM_MEDIA_TYPE


class ServerRenderedDocs(OpenAPIRenderPlugin):
    def __init__(self, *, path: str | list[str] = "/") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        rows: list[str] = []
        for path, operations in sorted(openapi_schema.get("paths", {}).items()):
            for method, operation in operations.items():
                if not isinstance(operation, dict):
                    continue
                summary = operation.get("summary") or operation.get("operationId", "")
                summary = html.escape(summary)
                tags = html.escape(", ".join(operation.get("tags", [])))
                rows.append(
                    f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code>"
                    f"</td><td>{summary}</td><td>{tags}</td></tr>"
                )
        json_url = html.escape(self.get_openapi_json_route(request))
        title = html.escape(info.get("title", "API"))
        version = html.escape(info.get("version", ""))
        page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:1.5rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left;vertical-align:top}}.m{{font-weight:600;width:5rem}}code{{font-size:.95em}}</style>
</head><body>
<h1>{title} <small>{version}</small></h1>
<p>{html.escape(info.get("description", ""))}</p>
<p>OpenAPI schema: <a href="{json_url}">{json_url}</a></p>
<table><thead><tr><th>方法</th><th>路径</th><th>说明</th><th>分组</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
</body></html>"""
        return page.encode()


# The refusals every operation may answer with, all RFC 9457 problem+json (api.core.problems).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable machine code"},
        "detail": {"type": "string", "description": "中文说明"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "description": "RFC 9457 problem+json; members such as retry_after may follow",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def with_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Every operation lists its problem+json answers: any 4xx refusal and 503 (an outside
    service is down). Litestar's own 4xx entries (plain JSON) are replaced: we answer
    problems. Changes the schema in place (idempotent) and returns it."""
    openapi.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    problem = {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}},
    }
    for item in openapi.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            responses = {
                code: answer
                for code, answer in operation.get("responses", {}).items()
                if not code.startswith("4")
            }
            responses["4XX"] = {"description": "拒绝 (problem+json)", "content": problem}
            responses["503"] = {"description": "外部服务不可用 (problem+json)", "content": problem}
            operation["responses"] = responses
    return openapi


class JsonSchemaWithProblems(JsonRenderPlugin):
    """/api/docs/openapi.json with every operation's problem+json answers listed."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, with_problems(openapi_schema))
