"""Stand-ins for the unit layer: an engine that answers from its input, served models built over
it with the real tokenizer, batcher, pipeline and tasks (no ONNX Runtime, no artifact), a second
task written over the same pipeline, and what the protocols' cells read of a gRPC context and an
aiohttp request."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, NoReturn, cast

import numpy as np

from attnserve.oip import inference_pb2 as oip
from attnserve.service.artifact import GraphPurpose, Manifest, ModelSpec, Pooling, TokenizerSpec
from attnserve.service.padding import PaddedBatch
from attnserve.service.server.batcher import Batcher
from attnserve.service.server.engine import Engine
from attnserve.service.server.limits import Limits
from attnserve.service.server.metrics import Metrics
from attnserve.service.server.options import TokenizeOptions
from attnserve.service.server.pipeline import Pipeline
from attnserve.service.server.registry import ServedModel, Task
from attnserve.service.server.tasks.embed import EmbedTask
from attnserve.service.server.tokenizer import TextTokenizer
from attnserve.service.server.tracing import Tracer

HIDDEN = 2
LIMITS = Limits(
    max_texts_per_request=16,
    max_chars_per_text=1000,
    max_tokens_per_text=64,
    max_attention_elements=10_000,
    max_receive_message_bytes=1 << 20,
    max_send_message_bytes=1 << 20,
    max_queue_texts=100,
)


class FakeEngine:
    """Pooled = (first content token id, real length): each row says whose text it was."""

    precision = "fp32"  # what Info reports of an engine
    provider = "CPUExecutionProvider"

    def __init__(self) -> None:
        self.batches: list[PaddedBatch] = []

    def supports_maps(self) -> bool:
        return False

    def run(
        self, purpose: GraphPurpose, batch: PaddedBatch, outputs: list[str]
    ) -> dict[str, np.ndarray]:
        self.batches.append(batch)
        lengths = batch.attention_mask.sum(axis=1)
        pooled = np.stack([batch.input_ids[:, 1], lengths], axis=1).astype(np.float32)
        tokens = np.repeat(batch.input_ids[:, :, None], HIDDEN, axis=2).astype(np.float32)
        return {"pooled": pooled, "token_embeddings": tokens}


def fake_manifest(name: str) -> Manifest:
    model = ModelSpec(
        name=name,
        source="unit test",
        hidden_size=HIDDEN,
        num_layers=1,
        num_heads=1,
        max_positions=64,
        vocab_size=32,
        pooling=Pooling.MEAN,
        normalize=False,
    )
    tokenizer = TokenizerSpec(file="tokenizer.json", default_max_tokens=64, pad_token_id=0,
                              lowercase=True)  # fmt: skip
    return Manifest(format_version=1, model=model, tokenizer=tokenizer, graphs=(), files={},
                    tools={}, created_at="")  # fmt: skip


def fake_model(
    name: str,
    tokenizer_file: Path,
    engine: FakeEngine,
    *task_types: Any,
    metrics: Metrics | None = None,
) -> ServedModel:
    """A served model over `engine` offering one task of each type (default: embed); a task
    type is built from the model's pipeline, as `app.load_model` builds `EmbedTask`."""
    manifest = fake_manifest(name)
    tokenizer = TextTokenizer(tokenizer_file, LIMITS.max_tokens_per_text)
    observed = (metrics or Metrics()).for_model(name)  # wired as app.load_model wires it
    batcher = Batcher(
        engine, 0, 1000, 16, 0.0, LIMITS.max_queue_texts,
        on_batch=observed.observe_batch, on_depth=observed.queue_depth.set,
    )  # fmt: skip
    pipeline = Pipeline(manifest, LIMITS, tokenizer, batcher, observed, Tracer(None))
    tasks: tuple[Task, ...] = tuple(
        EmbedTask(pipeline, False) if kind is EmbedTask else kind(pipeline)
        for kind in (task_types or (EmbedTask,))
    )
    return ServedModel(
        name, (), tokenizer_file.parent, manifest, LIMITS, cast(Engine, engine), tokenizer,
        batcher, pipeline, tasks,
    )  # fmt: skip


class PairScore:
    """A second task over the same pipeline: one score per (query, document) pair. The fake
    engine's pooled row is (first token id, length): the score here is the pair's length."""

    name: ClassVar[str] = "score"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        joined = [f"{query} {document}" for query, document in pairs]
        tokenized = await self.pipeline.admit(joined, TokenizeOptions())
        ran = await self.pipeline.run(tokenized, "fast", False, None)
        return [float(result.pooled[1]) for result in ran.results]


class AbortedError(Exception):
    """What `FakeContext.abort` raises: the status and message a client would see."""

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class FakeContext:
    """What the gRPC envelope asks of a servicer context."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> None:
        return None

    async def abort(self, code: Any, message: str) -> NoReturn:
        raise AbortedError(code, message)


class FakeRequest:
    """What the HTTP route sets read of an aiohttp request."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.headers: dict[str, str] = {}
        self.body = body

    async def json(self) -> dict[str, Any]:
        return self.body


def infer_request(model: str, texts: list[str]) -> bytes:
    """An OIP ModelInferRequest of `texts` for `model`, serialised as it arrives."""
    tensor = oip.ModelInferRequest.InferInputTensor(
        name="text",
        datatype="BYTES",
        shape=[len(texts)],
        contents=oip.InferTensorContents(bytes_contents=[text.encode() for text in texts]),
    )
    return oip.ModelInferRequest(model_name=model, inputs=[tensor]).SerializeToString()
