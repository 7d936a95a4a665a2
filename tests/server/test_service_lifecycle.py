"""Overload, streaming, request ids, security and shutdown: the server under real conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attnserve.service.client.channel import Connection
from attnserve.service.client.client import EmbedderClient
from attnserve.service.loadtest.generator import LoadConfig, run_load
from attnserve.v1 import embedder_pb2 as pb
from tests.support.certificates import make_certificates
from tests.support.cli import IMPORTS_FILE, probing_imports, torch_side_imported
from tests.support.servers import MakeServer, ServerThread, wait_for_port_file


@pytest.fixture
def tiny_queue_server(make_server: MakeServer) -> ServerThread:
    return make_server(max_queue_texts=8, max_batch_texts=4, max_texts_per_request=4)


def test_burst_over_a_tiny_queue_is_refused_for_the_excess(tiny_queue_server: ServerThread) -> None:
    text = "overload " * 60

    def one(_: int) -> tuple[grpc.StatusCode, str]:
        with EmbedderClient(tiny_queue_server.target, attempts=1) as client:
            try:
                client.embed([text] * 4, timeout_s=60)
            except grpc.RpcError as error:
                return error.code(), error.details() or ""
            return grpc.StatusCode.OK, ""

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(one, range(24)))
    codes = [code for code, _ in outcomes]
    refusals = [details for code, details in outcomes if code != grpc.StatusCode.OK]
    assert all("queue is full" in details for details in refusals)
    assert codes.count(grpc.StatusCode.OK) >= 2
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert tiny_queue_server.running.assembly.models.default.batcher.depth == 0


def test_stream_answers_every_request_and_reports_errors_inline(client: EmbedderClient) -> None:
    requests = [
        pb.EmbedRequest(texts=[f"stream text {i}"], request_id=f"r{i}") for i in range(10)
    ] + [pb.EmbedRequest(texts=[""], request_id="bad")]
    responses = list(client.stub.EmbedStream(iter(requests), timeout=60))
    by_id = {response.request_id: response for response in responses}
    assert set(by_id) == {f"r{i}" for i in range(10)} | {"bad"}
    assert by_id["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "empty" in by_id["bad"].error.message
    solo = client.embed(["stream text 3"])
    assert solo.pooled is not None
    assert by_id["r3"].pooled.data == solo.pooled.tobytes()


def test_request_id_comes_back_in_trailing_metadata(client: EmbedderClient) -> None:
    _, call = client.stub.Embed.with_call(
        pb.EmbedRequest(texts=["trace me"]), metadata=(("x-request-id", "req-42"),), timeout=30
    )
    assert ("x-request-id", "req-42") in tuple(call.trailing_metadata())
    generated = set()
    for _ in range(3):
        _, call = client.stub.Embed.with_call(pb.EmbedRequest(texts=["no id"]), timeout=30)
        generated.add(dict(call.trailing_metadata())["x-request-id"])
    assert len(generated) == 3  # a new id for every call
    assert all(len(request_id) == 32 for request_id in generated)


def test_a_failed_call_carries_its_request_id_too(client: EmbedderClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.stub.Embed(pb.EmbedRequest(), metadata=(("x-request-id", "bad-1"),), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("x-request-id", "bad-1") in tuple(caught.value.trailing_metadata())


def test_health_is_serving_and_reflection_lists_the_service(client: EmbedderClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "attnserve.v1.Embedder"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in reply.list_services_response.service}
    assert "attnserve.v1.Embedder" in names


# --- security ------------------------------------------------------------------------------------


def test_tls_mtls_and_token_auth(make_server: MakeServer, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    secured = make_server(
        tls_cert=certs["server_cert"],
        tls_key=certs["server_key"],
        tls_client_ca=certs["ca"],
        auth_tokens="s3cret-token,other-token",
    )
    target = f"localhost:{secured.running.port}"
    mtls = Connection(
        target, "s3cret-token", ca=certs["ca"], cert=certs["client_cert"], key=certs["client_key"]
    )
    with EmbedderClient(mtls) as good:
        assert good.embed(["over mTLS"]).pooled is not None
    # The load tester connects the same way (same flags, same channel helper): mTLS too.
    _, summary = run_load(LoadConfig(mtls, requests=5, duration_s=30, warmup_s=0))
    assert (summary.sent, summary.succeeded, summary.errors) == (5, 5, {})
    with (
        EmbedderClient(replace(mtls, token="wrong"), attempts=1) as bad_token,
        pytest.raises(grpc.RpcError) as caught,
    ):
        bad_token.embed(["x"])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with (
        EmbedderClient(replace(mtls, cert=None, key=None), attempts=1) as no_client_cert,
        pytest.raises(grpc.RpcError) as caught,
    ):
        no_client_cert.embed(["x"], timeout_s=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused
    plaintext_target = target.replace("localhost", "127.0.0.1")
    with (
        EmbedderClient(plaintext_target, attempts=1) as plain,
        pytest.raises(grpc.RpcError),
    ):
        plain.embed(["plaintext to a TLS port"], timeout_s=10)


# --- shutdown ------------------------------------------------------------------------------------


def test_sigterm_drains_then_exits_zero(artifact_dir: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "ATTNSERVE_PORT_FILE": str(port_file)}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "attnserve.service.cli", "serve", "--artifact", str(artifact_dir),
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--drain-delay-s", "1.5", "--shutdown-grace-s", "20", "--warmup", "false",
        ],
        env=env,
    )  # fmt: skip
    try:
        port = wait_for_port_file(port_file, process, timeout=120)
        target = f"127.0.0.1:{port}"
        with EmbedderClient(target, attempts=1) as client:
            health = health_pb2_grpc.HealthStub(client.channel)
            in_flight = client.stub.Embed.future(
                pb.EmbedRequest(texts=["long running " * 40] * 300), timeout=60
            )
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # inside the drain delay
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert len(in_flight.result(timeout=60).results) == 300
            time.sleep(1.5)  # past the drain delay: new calls are refused
            with pytest.raises(grpc.RpcError) as caught:
                client.embed(["too late"], timeout_s=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_reaches_serving_and_drains_without_importing_torch(
    artifact_dir: Path, tmp_path: Path
) -> None:
    """`attnserve serve` with a built artifact, start to SIGTERM's exit, imports none of the
    torch side: before, registering every command imported torch first (2 s of each start)."""
    port_file, imports = tmp_path / "port", tmp_path / "imports.json"
    process = subprocess.Popen(
        probing_imports(
            "serve", "--artifact", str(artifact_dir), "--host", "127.0.0.1", "--port", "0",
            "--port-file", str(port_file), "--metrics-port", "-1", "--drain-delay-s", "0",
        ),
        env={**os.environ, IMPORTS_FILE: str(imports)},
    )  # fmt: skip
    try:
        port = wait_for_port_file(port_file, process, timeout=120)
        with EmbedderClient(f"127.0.0.1:{port}", attempts=1) as client:
            assert client.embed(["served"]).pooled is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert torch_side_imported(imports) == []


def test_concurrent_load_while_stopping_never_hangs(
    make_server: MakeServer,
) -> None:
    running = make_server()
    errors: list[grpc.StatusCode] = []

    def hammer() -> None:
        with EmbedderClient(running.target, attempts=1) as client:
            for _ in range(20):
                try:
                    client.embed(["under load"], timeout_s=20)
                except grpc.RpcError as error:
                    errors.append(error.code())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    running.stop()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert set(errors) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


def test_max_connection_age_recycles_long_lived_connections(
    make_server: MakeServer,
) -> None:
    running = make_server(max_connection_age_s=1.0, max_connection_age_grace_s=1.0)
    states: list[grpc.ChannelConnectivity] = []
    # With the client's retry policy, as users run it: a call that races a GOAWAY (the stream
    # is removed before the server saw it) comes back UNAVAILABLE and is retried.
    with EmbedderClient(running.target) as client:
        client.channel.subscribe(states.append, try_to_connect=True)
        answered = 0
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            assert client.embed(["still answered after a GOAWAY"]).pooled is not None
            answered += 1
            time.sleep(0.05)
    assert answered > 20
    # Each age-out sends GOAWAY: the channel goes idle and connects again (to whichever pod
    # DNS now offers, in a cluster), while every call above still succeeded.
    assert states.count(grpc.ChannelConnectivity.READY) >= 2, states


def test_message_size_limits_are_enforced(make_server: MakeServer) -> None:
    running = make_server(max_receive_message_bytes=4096)
    with EmbedderClient(running.target, attempts=1) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.embed(["x" * 5000])
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.embed(["a request under the limit"]).pooled is not None
        assert client.info().limits.max_receive_message_bytes == 4096
