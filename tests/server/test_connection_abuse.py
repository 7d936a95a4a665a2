"""Clients that hold connections, streams and pings against the server: it keeps serving others.

Each abuser is real gRPC traffic over loopback; each test ends by checking that an ordinary
client is answered promptly, and that the abuse was bounded where the server bounds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from attnserve.service.client.client import EmbedderClient
from attnserve.v1 import embedder_pb2 as pb
from tests.support.servers import MakeServer, ServerThread, metric, wait_until


def answered_promptly(server: ServerThread) -> None:
    with EmbedderClient(server.target, attempts=1) as client:
        served = client.embed(["an ordinary caller"], timeout_s=20)
    assert served.pooled is not None


def test_many_idle_connections_do_not_starve_a_new_one(server: ServerThread) -> None:
    idle = [grpc.insecure_channel(server.target) for _ in range(200)]
    try:
        for channel in idle:
            grpc.channel_ready_future(channel).result(timeout=30)
        answered_promptly(server)
    finally:
        for channel in idle:
            channel.close()


def test_open_streams_that_send_nothing_do_not_block_other_calls(server: ServerThread) -> None:
    stop = threading.Event()

    def silent() -> Iterator[bytes]:
        stop.wait(60)
        return
        yield b""  # a generator that sends nothing until stopped

    channels = [grpc.insecure_channel(server.target) for _ in range(4)]
    calls = []
    try:
        for index in range(60):
            stream = channels[index % 4].stream_stream("/attnserve.v1.Embedder/EmbedStream")
            calls.append(stream(silent(), timeout=60))
        answered_promptly(server)
    finally:
        stop.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def test_a_client_that_never_reads_holds_only_a_bounded_amount_of_work(
    make_server: MakeServer,
) -> None:
    running = make_server(max_stream_pending=4)
    registry = running.running.assembly.metrics.registry

    def tokenised() -> float:
        return metric(registry, "attnserve_tokenize_duration_seconds_count")

    requests = [
        pb.EmbedRequest(texts=[f"never read {i} " * 30] * 4, request_id=str(i)).SerializeToString()
        for i in range(500)
    ]
    # A small receive window that never grows: the client's unread answers fill it quickly,
    # as a reader that stalls for good would.
    window = [("grpc.http2.lookahead_bytes", 16384), ("grpc.http2.bdp_probe", 0)]
    with grpc.insecure_channel(running.target, options=window) as channel:
        stream = channel.stream_stream("/attnserve.v1.Embedder/EmbedStream")
        call = stream(iter(requests), timeout=120)  # sent eagerly; responses not read yet
        # The server works until its bounded queues fill, then stops reading the stream.
        assert wait_until(lambda: tokenised() >= 4, timeout=60)
        settled = -1.0
        while settled != tokenised():  # until it has stopped taking new requests
            settled = tokenised()
            time.sleep(1.0)
        assert settled < 40  # 4 in progress + 4 answers waiting (+ what HTTP/2 buffered)
        answered_promptly(running)  # others are served meanwhile
        replies = [pb.EmbedResponse.FromString(raw) for raw in call]  # now read them all
    assert sorted(int(reply.request_id) for reply in replies) == list(range(500))
    assert all(reply.pooled.data for reply in replies)


def test_a_client_that_pings_too_often_is_sent_away_and_others_are_served(
    make_server: MakeServer,
) -> None:
    running = make_server(min_client_ping_interval_s=5.0)
    abusive = grpc.insecure_channel(
        running.target,
        options=[
            ("grpc.keepalive_time_ms", 10),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", 10),
        ],
    )
    states: list[grpc.ChannelConnectivity] = []
    abusive.subscribe(states.append, try_to_connect=True)
    try:
        grpc.channel_ready_future(abusive).result(timeout=30)
        ready_at = len(states)
        deadline = time.monotonic() + 30
        # GOAWAY (too_many_pings) takes the connection down: the channel leaves READY.
        while time.monotonic() < deadline and all(
            state == grpc.ChannelConnectivity.READY for state in states[ready_at:]
        ):
            time.sleep(0.1)
        assert any(state != grpc.ChannelConnectivity.READY for state in states[ready_at:])
        answered_promptly(running)
    finally:
        abusive.close()
