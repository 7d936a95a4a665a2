"""A test server called as an outside caller calls it: JSON POSTed with aiohttp, the vectors of
OIP's ModelInfer and of the OpenAI SDK, and the cosines that compare them with a reference."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import openai

from attnserve.oip import inference_pb2 as oip
from attnserve.oip import inference_pb2_grpc
from tests.support.servers import ServerThread


@dataclass(frozen=True)
class HttpAnswer:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def post(server: ServerThread, path: str, body: object) -> HttpAnswer:
    """POST JSON with aiohttp's client, as an outside caller does."""
    import aiohttp

    async def send() -> HttpAnswer:
        url = f"http://127.0.0.1:{server.running.http_port}{path}"
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as answer:
            return HttpAnswer(answer.status, await answer.text())

    return asyncio.run(send())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def oip_vectors(server: ServerThread, model: str, texts: list[str]) -> np.ndarray:
    with grpc.insecure_channel(server.target) as channel:
        stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        request = oip.ModelInferRequest(model_name=model, id="family")
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
        tensor.contents.bytes_contents.extend(text.encode() for text in texts)
        request.outputs.add(name="embedding")  # alone (none named: token_count, truncated too)
        response = stub.ModelInfer(request, timeout=60)
    (output,) = response.outputs
    flat = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    return flat.reshape(list(output.shape))


def openai_vectors(server: ServerThread, model: str, texts: list[str]) -> np.ndarray:
    base = f"http://127.0.0.1:{server.running.http_port}/v1"
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
    answer = client.embeddings.create(model=model, input=texts)
    return np.array([item.embedding for item in answer.data], dtype=np.float32)
