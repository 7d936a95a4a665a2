"""The API reference the server generates from its route table (`GET /openapi.json`, `GET
/docs`): a valid OpenAPI document (openapi-spec-validator), naming every route the app serves
and no other, each body's example accepted by its real route, and a page that needs no network.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.clients.conftest import RERANKER, http_base
from tests.support.servers import ServerThread


def get(server: ServerThread, path: str) -> str:
    with urllib.request.urlopen(http_base(server) + path, timeout=60) as answer:
        return str(answer.read().decode())


def post(server: ServerThread, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        http_base(server) + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_document_is_valid_openapi_and_names_every_route(pod: ServerThread) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    spec = json.loads(get(pod, "/openapi.json"))
    validator.validate(spec)  # raises on any fault
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assembly = pod.running.assembly
    assert assembly.http is not None
    app = assembly.http.application(1 << 20)  # the same route sets the server runs
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert documented == served


def test_each_body_example_is_accepted_by_its_route(pod: ServerThread) -> None:
    spec = json.loads(get(pod, "/openapi.json"))
    schemas = spec["components"]["schemas"]
    tried = 0
    for path, ops in spec["paths"].items():
        body = ops.get("post", {}).get("requestBody")
        if body is None:
            continue
        name = body["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        example = schemas[name]["examples"][0]
        status, answer = post(pod, path, example)
        if status != 200 and "does not offer" in json.dumps(answer):  # the default embeds
            status, answer = post(pod, path, {**example, "model": RERANKER})
        expected = 424 if path == "/embed_sparse" else 200  # no sparse head is served
        assert status == expected, (path, example, answer)
        tried += 1
    assert tried >= 15


def test_the_docs_page_renders_the_document_without_the_network(pod: ServerThread) -> None:
    page = get(pod, "/docs")
    spec = json.loads(get(pod, "/openapi.json"))
    for path in spec["paths"]:
        assert json.dumps(path) in page  # the document is inlined
    assert "src=" not in page  # no script or image fetched from anywhere
    assert 'href="http' not in page
