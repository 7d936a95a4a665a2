"""The image's HEALTHCHECK: asks the server in the same container for grpc.health.v1 status.

For people who run the image without Kubernetes (which uses its native gRPC probes instead).
Exit 0 when `attnserve.v1.Embedder` is SERVING, 1 otherwise (loading, warming up, draining,
down). Like the Kubernetes probes it speaks plaintext gRPC: with TLS on, disable it
(`--no-healthcheck`) or replace it. The port is the server's own setting, ATTNSERVE_PORT.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "attnserve.v1.Embedder"
TIMEOUT_S = 3.0


def serving(port: str) -> bool:
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            print(f"health check failed: {error.code().name}", file=sys.stderr)
            return False
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    sys.exit(0 if serving(os.environ.get("ATTNSERVE_PORT", "50051")) else 1)
