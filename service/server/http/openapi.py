"""The HTTP app's API reference, generated from its route table: `GET /openapi.json` (OpenAPI
3.1, each request body the JSON Schema of its pydantic model, with its example) and `GET /docs`,
a page that renders it with no network (no CDN, no Swagger UI bundle: a server in a closed
network still shows its reference).

Each route set says its routes beside their handlers (`RouteSet.docs`); this module only
gathers them, with the app's own (health, this reference), so a route added without its entry
is caught by a test (tests/clients/test_openapi.py compares the table with the app's router).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from typing import Any

from attnserve.service.server.http.fields import RouteDoc, RouteSet

# The app's own routes (app.py), outside every route set.
APP_ROUTES = (
    RouteDoc("get", "/health", "200 while every model is ready, 503 otherwise"),
    RouteDoc("get", "/ping", "as /health (SageMaker's probe)"),
    RouteDoc("get", "/", "as /health (TEI's)"),
    RouteDoc("get", "/openapi.json", "this reference"),
    RouteDoc("get", "/docs", "this reference as a page"),
)
OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
TEI_ERROR = {
    "type": "object",
    "required": ["error", "error_type"],
    "properties": {
        "error": {"type": "string"},
        "error_type": {
            "type": "string",
            "enum": ["Validation", "Empty", "Overloaded", "Backend", "Unhealthy", "Tokenizer"],
        },
    },
}


def routes_of(route_sets: Sequence[RouteSet]) -> list[RouteDoc]:
    return [*APP_ROUTES, *(doc for routes in route_sets for doc in routes.docs)]


def operation(doc: RouteDoc, schemas: dict[str, Any]) -> dict[str, Any]:
    error = "#/components/schemas/" + ("TeiError" if doc.errors == "tei" else "OpenAIError")
    answer: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": f"{doc.method}_{doc.path.strip('/').replace('/', '_') or 'root'}",
        "responses": {
            "200": {"description": "the answer"},
            "default": {
                "description": "a refusal: the status and the error body say why",
                "content": {"application/json": {"schema": {"$ref": error}}},
            },
        },
    }
    if doc.body is not None:
        schema = doc.body.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in schema.pop("$defs", {}).items():
            schemas[name] = nested
        schemas[doc.body.__name__] = schema
        ref = {"$ref": f"#/components/schemas/{doc.body.__name__}"}
        answer["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    return answer


def document(route_sets: Sequence[RouteSet]) -> dict[str, Any]:
    """The OpenAPI document of every route the app serves."""
    schemas: dict[str, Any] = {"OpenAIError": OPENAI_ERROR, "TeiError": TEI_ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for doc in routes_of(route_sets):
        paths.setdefault(doc.path, {})[doc.method] = operation(doc, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "attnserve HTTP API",
            "version": importlib.metadata.version("attnserve"),
            "description": "OpenAI's embeddings, Cohere's and Jina's rerank, text-embeddings-"
            "inference's API, Infinity's and vLLM's classify and late chunking, over one "
            "server's models (docs/clients.md).",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>attnserve HTTP API</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .3rem; }
code, pre { font-family: ui-monospace, monospace; }
.method { display: inline-block; width: 3.2rem; font-weight: 600; text-transform: uppercase; }
pre { background: #f4f4f4; padding: .6rem; overflow-x: auto; font-size: 13px; }
</style></head><body>
<h1>attnserve HTTP API</h1>
<p>Generated from the server's route table, as <a href="/openapi.json">/openapi.json</a>.</p>
<div id="routes"></div>
<script id="spec" type="application/json">__SPEC__</script>
<script>
const spec = JSON.parse(document.getElementById("spec").textContent);
const schemas = spec.components.schemas;
const out = document.getElementById("routes");
for (const [path, methods] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(methods)) {
    const h = document.createElement("h2");
    h.innerHTML = `<span class="method">${method}</span> <code>${path}</code>`;
    out.append(h);
    const p = document.createElement("p");
    p.textContent = op.summary;
    out.append(p);
    const body = op.requestBody;
    if (body) {
      const name = body.content["application/json"].schema["$ref"].split("/").pop();
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(schemas[name], null, 2);
      out.append(pre);
    }
  }
}
</script></body></html>
"""


def page(route_sets: Sequence[RouteSet]) -> str:
    """`/docs`: the document inlined into a page that renders it offline."""
    spec = json.dumps(document(route_sets)).replace("</", "<\\/")  # never closes the script
    return PAGE.replace("__SPEC__", spec)
