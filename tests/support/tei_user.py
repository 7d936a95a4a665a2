"""A TEI user's gRPC client, run as its own process: stubs compiled from TEI's `tei.proto` by
`grpc_tools.protoc` into a folder, imported from there, never attnserve's.

Its own process because a process can hold only one definition of `tei.v1.*`: attnserve's
stubs (`attnserve.tei`, which the server in the test process imports) and a user's own define
the same names from different files, and protobuf refuses the second.

    python tests/support/tei_user.py STUBS_DIR TARGET < plan.json > answers.json

The plan is a list of calls, `{"service", "method", "kind", "requests"}` (kind: "unary",
"stream", "client_stream" or "health"; requests as JSON dicts of TEI's messages; optionally
"metadata", [[key, value], ...], sent with the call); each answer is
`{"responses": [...], "code": "OK" or the status's name, "details": ...}`, the responses as
JSON dicts (field names as in the .proto, defaults included).
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc


def as_dict(message: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return answer


def call(channel: grpc.Channel, pb: Any, stubs: Any, step: dict[str, Any]) -> dict[str, Any]:
    kind, service, method = step["kind"], step["service"], step["method"]
    metadata = [tuple(pair) for pair in step.get("metadata", [])]
    responses: list[dict[str, Any]] = []
    try:
        if kind == "health":
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            return {"responses": [], "code": "OK", "status": status}
        stub = getattr(stubs, f"{service}Stub")(channel)
        rpc = getattr(stub, method)
        descriptor = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        request_type = getattr(pb, descriptor.input_type.name)
        requests = [json_format.ParseDict(r, request_type()) for r in step["requests"]]
        if kind == "unary":
            responses.append(as_dict(rpc(requests[0], timeout=60, metadata=metadata)))
        elif kind == "client_stream":
            responses.append(as_dict(rpc(iter(requests), timeout=60, metadata=metadata)))
        else:
            for response in rpc(iter(requests), timeout=60, metadata=metadata):
                responses.append(as_dict(response))
    except grpc.RpcError as error:
        return {"responses": responses, "code": error.code().name, "details": error.details()}
    return {"responses": responses, "code": "OK"}


def main() -> int:
    stubs_dir, target = sys.argv[1], sys.argv[2]
    sys.path.insert(0, stubs_dir)
    pb = importlib.import_module("tei_pb2")
    stubs = importlib.import_module("tei_pb2_grpc")
    plan = json.load(sys.stdin)
    with grpc.insecure_channel(target) as channel:
        answers = [call(channel, pb, stubs, step) for step in plan]
    json.dump(answers, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
