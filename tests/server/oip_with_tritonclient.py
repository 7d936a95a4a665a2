"""Triton's own client against attnserve's Open Inference Protocol endpoint.

Run by tests/server/test_oip.py with the Python of a separate environment that has
`tritonclient[grpc]` (it pins protobuf and numpy older than ours):

    .venv-triton/bin/python tests/server/oip_with_tritonclient.py HOST:PORT MODEL TEXT [TEXT ...]

Prints one JSON document: what each call returned (embeddings as lists), for the test to check.
Imports nothing of attnserve: this is what any Triton user's code looks like.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def infer_raw(client: Any, model: str, texts: list[str], **parameters: Any) -> list[list[float]]:
    """tritonclient's usual way: the BYTES tensor as raw_input_contents."""
    text = triton.InferInput("text", [len(texts), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    result = client.infer(
        model, [text], outputs=[triton.InferRequestedOutput("embedding")], parameters=parameters
    )
    embeddings: list[list[float]] = result.as_numpy("embedding").tolist()
    return embeddings


def infer_typed(target: str, model: str, texts: list[str]) -> list[list[float]]:
    """Typed contents (bytes_contents), through Triton's generated stub."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=model, id="typed-1")
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
        tensor.contents.bytes_contents.extend(t.encode() for t in texts)
        response = stub.ModelInfer(request, timeout=60)
    # No outputs named: all of them come back (embedding, token_count, truncated), as Triton does.
    names = [output.name for output in response.outputs]
    assert names == ["embedding", "token_count", "truncated"], names
    output = response.outputs[0]
    flat = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    assert response.id == "typed-1"
    embeddings: list[list[float]] = flat.reshape(list(output.shape)).tolist()
    return embeddings


def infer_counted(client: Any, model: str, texts: list[str]) -> dict[str, list[Any]]:
    """Each text's token count and truncated flag beside its vector, the start cut."""
    text = triton.InferInput("text", [len(texts), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    outputs = [triton.InferRequestedOutput(name) for name in ("token_count", "truncated")]
    outputs.append(triton.InferRequestedOutput("embedding"))
    result = client.infer(model, [text], outputs=outputs, parameters={"truncate": "start"})
    return {
        name: result.as_numpy(name).tolist() for name in ("token_count", "truncated", "embedding")
    }


def failure(call: Any) -> dict[str, str]:
    try:
        call()
    except InferenceServerException as error:
        return {"status": str(error.status()), "message": error.message() or ""}
    return {"status": "OK", "message": ""}


def main() -> int:
    target, model, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    client = triton.InferenceServerClient(target)
    config = client.get_model_config(model, as_json=True)["config"]
    metadata = client.get_model_metadata(model, as_json=True)
    report: dict[str, Any] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "other_model_ready": client.is_model_ready("no-such-model"),
        "server": client.get_server_metadata(as_json=True),
        "metadata": metadata,
        "config": config,
        "raw": infer_raw(client, model, texts),
        "typed": infer_typed(target, model, texts),
        "raw_64_unnormalised": infer_raw(client, model, texts, dimensions=64, normalize=False),
    }
    wrong_input = triton.InferInput("words", [1], "BYTES")
    wrong_input.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    empty = triton.InferInput("text", [1], "BYTES")
    empty.set_data_from_numpy(np.array([b""], dtype=np.object_))
    report["errors"] = {
        "wrong_input": failure(lambda: client.infer(model, [wrong_input])),
        "empty_text": failure(lambda: client.infer(model, [empty])),
        "unknown_model": failure(lambda: client.infer("no-such-model", [empty])),
    }
    report["statistics"] = client.get_inference_statistics(model, as_json=True)
    # After the statistics, which count the calls above. LONG_TEXT: a text over the model's
    # token cap, which the test gives.
    long_text = os.environ.get("LONG_TEXT")
    if long_text:
        report["counted"] = infer_counted(client, model, [*texts, long_text])
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
