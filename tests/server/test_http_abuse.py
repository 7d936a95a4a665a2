"""The OpenAI HTTP route under the treatment the gRPC API got: malformed JSON, wrong types, huge
and slow bodies, many idle keep-alive connections. Each gets the right status in OpenAI's error
shape (never a 500 or a traceback), nothing leaks (connections, in-flight calls), and the
server keeps answering an ordinary caller throughout."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.servers import MakeServer, ServerThread, wait_until

MODEL = "all-MiniLM-L6-v2"
BODY_LIMIT = 64 << 10  # the server's max_receive_message_bytes here: huge bodies stay cheap
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def http(artifact_dir: Any) -> Any:
    from tests.support.servers import server_settings

    running = ServerThread(
        server_settings(
            artifact_dir, http_port=0, warmup=False, max_receive_message_bytes=BODY_LIMIT
        )
    )
    yield running
    running.stop()


def post(server: ServerThread, body: bytes, path: str = "/v1/embeddings") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.running.http_port}{path}",
        data=body,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


def ordinary(server: ServerThread) -> None:
    status, body = post(server, json.dumps({"input": "still here", "model": MODEL}).encode())
    assert status == 200, body
    assert len(body["data"][0]["embedding"]) == 384


def openai_error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict), body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    assert "Error:" not in error["message"]  # no Python exception class names
    return error


BAD_BODIES = {
    "not JSON": b"{not json",
    "truncated JSON": b'{"input": "a", "model": ',
    "not UTF-8": b'{"input": "\xff\xfe", "model": "all-MiniLM-L6-v2"}',
    "a JSON list": b'["a", "b"]',
    "a JSON string": b'"hello"',
    "a JSON number": b"42",
    "null": b"null",
    "empty body": b"",
    "input a number": json.dumps({"input": 5, "model": MODEL}).encode(),
    "input null": json.dumps({"input": None, "model": MODEL}).encode(),
    "input mixed list": json.dumps({"input": ["a", 1], "model": MODEL}).encode(),
    "input of objects": json.dumps({"input": [{"text": "a"}], "model": MODEL}).encode(),
    "input empty list": json.dumps({"input": [], "model": MODEL}).encode(),
    "input empty string": json.dumps({"input": "", "model": MODEL}).encode(),
    "token ids": json.dumps({"input": [[1, 2, 3]], "model": MODEL}).encode(),
    "model a number": json.dumps({"input": "a", "model": 3}).encode(),
    "dimensions a string": json.dumps({"input": "a", "model": MODEL, "dimensions": "8"}).encode(),
    "dimensions a bool": json.dumps({"input": "a", "model": MODEL, "dimensions": True}).encode(),
    "dimensions negative": json.dumps({"input": "a", "model": MODEL, "dimensions": -1}).encode(),
    "dimensions huge": json.dumps({"input": "a", "model": MODEL, "dimensions": 10**30}).encode(),
    "dimensions a float": json.dumps({"input": "a", "model": MODEL, "dimensions": 8.5}).encode(),
    "encoding a list": json.dumps(
        {"input": "a", "model": MODEL, "encoding_format": ["float"]}
    ).encode(),
    "truncate a string": json.dumps({"input": "a", "model": MODEL, "truncate": "yes"}).encode(),
    "deep nesting": b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b', "model": "x"}',
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_bad_body_gets_a_4xx_in_openais_shape(http: ServerThread, case: str) -> None:
    status, body = post(http, BAD_BODIES[case])
    assert status in {400, 404}, (case, status, body)
    openai_error(body)


def test_a_body_over_the_limit_is_413_and_costs_nothing(http: ServerThread) -> None:
    huge = json.dumps({"input": "x" * (2 * BODY_LIMIT), "model": MODEL}).encode()
    status, body = post(http, huge)
    assert status == 413, body
    openai_error(body)
    ordinary(http)


def test_wrong_methods_and_paths(http: ServerThread) -> None:
    url = f"http://127.0.0.1:{http.running.http_port}"
    for method, path, expected in (
        ("GET", "/v1/embeddings", 405),
        ("DELETE", "/v1/models", 405),
        ("POST", "/v1/chat/completions", 404),
        ("GET", "/../../etc/passwd", 404),
    ):
        request = urllib.request.Request(url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == expected, (method, path)


@FUZZ
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["input", "model", "dimensions", "encoding_format", "truncate", "x"]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
)
def test_generated_json_gets_a_status(http: ServerThread, body: Any) -> None:
    status, answer = post(http, json.dumps(body).encode())
    assert status in {200, 400, 404}, (body, status, answer)
    if status != 200:
        openai_error(answer)


# The routes other servers' clients call (TEI's, Cohere v2's, Infinity's and vLLM's classify)
# over this embedder: the score routes refuse (it offers no score task) after reading the body;
# and attnserve's own explanation route, added beside them.
DROP_IN_PATHS = ["/embeddings", "/", "/invocations", "/embed", "/embed_all", "/embed_sparse",
                 "/similarity", "/tokenize", "/decode", "/rerank", "/predict", "/v2/rerank",
                 "/classify", "/v1/classify", "/v1/explain"]  # fmt: skip
TEI_PATHS = {"/", "/invocations", "/embed", "/embed_all", "/embed_sparse", "/similarity",
             "/tokenize", "/decode", "/rerank", "/predict"}  # fmt: skip
FIELDS = ["inputs", "input", "query", "texts", "documents", "model", "truncate",
          "truncation_direction", "normalize", "dimensions", "prompt_name", "ids", "parameters",
          "source_sentence", "sentences", "top_n", "max_tokens_per_doc", "raw_scores",
          "add_special_tokens", "skip_special_tokens", "return_text", "rollout"]  # fmt: skip


@FUZZ
@given(
    path=st.sampled_from(DROP_IN_PATHS),
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(FIELDS), children, max_size=5)
        ),
        max_leaves=12,
    ),
)
def test_generated_json_on_the_drop_in_routes_gets_a_status(
    http: ServerThread, path: str, body: Any
) -> None:
    status, answer = post(http, json.dumps(body).encode(), path)
    assert status in {200, 400, 404, 422, 424}, (path, body, status, answer)
    if status == 200:
        return
    if path in TEI_PATHS:  # TEI's error body
        assert set(answer) == {"error", "error_type"}, answer
        assert "Traceback" not in answer["error"]
    else:
        openai_error(answer)


def open_connections() -> int:
    """This process's open sockets (the test server runs in it)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed between the listing and the look
            continue
    return count


def test_slow_bodies_and_idle_keepalive_connections_do_not_block_others(
    make_server: MakeServer,
) -> None:
    running = make_server(http_port=0)
    port = running.running.http_port
    baseline = open_connections()
    held: list[socket.socket] = []
    try:
        for _ in range(100):  # idle keep-alive connections: connected, nothing sent
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for index in range(30):  # slow bodies: headers and a promise of more than ever comes
            slow = socket.create_connection(("127.0.0.1", port), timeout=10)
            slow.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 60000\r\n\r\n" + b'{"input": "' + b"a" * index
            )
            held.append(slow)
        for _ in range(3):  # a used keep-alive connection left open after its answer
            used = socket.create_connection(("127.0.0.1", port), timeout=10)
            used.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            assert used.recv(65536).startswith(b"HTTP/1.1 200")
            held.append(used)
        started = time.monotonic()
        ordinary(running)  # answered while all of the above hang on
        assert time.monotonic() - started < 30
    finally:
        for sock in held:
            sock.close()
    # Nothing leaks: the abandoned calls end, their sockets close, no call stays in flight.
    gauge = running.running.assembly.metrics.in_flight
    assert wait_until(lambda: gauge._value.get() == 0, timeout=30), gauge._value.get()
    assert wait_until(lambda: open_connections() <= baseline + 2, timeout=30), (
        open_connections(),
        baseline,
    )
    ordinary(running)
    assert (
        running.running.assembly.metrics.registry.get_sample_value(
            "attnserve_errors_total", {"protocol": "openai", "code": "INTERNAL"}
        )
        is None
    )


def test_no_abuse_was_a_server_fault(http: ServerThread) -> None:
    """Run last in this file: none of the above was counted as INTERNAL."""
    for protocol in ("openai", "http"):
        count = http.running.assembly.metrics.registry.get_sample_value(
            "attnserve_errors_total", {"protocol": protocol, "code": "INTERNAL"}
        )
        assert not count, protocol
    ordinary(http)  # and it still answers
