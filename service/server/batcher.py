"""Dynamic batching: texts from many requests merged into model batches under a token budget.

Each text is a `WorkItem` with its own future, so a large request is split across model batches
transparently and one text's failure never touches its neighbours. Batches form around the
oldest waiting text (no starvation) from the texts closest to it in length (little padding),
under `max_batch_tokens` padded tokens and `max_batch_texts` texts. A lone caller pays no
wait; under concurrency a batch waits up to `max_wait_ms` for the callers the last batch just
answered. The queue is bounded: past `max_queue_texts` a request is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from attnserve.service.artifact import GraphPurpose
from attnserve.service.padding import PaddedBatch, pad
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.tokenizer import EncodedText

log = logging.getLogger(__name__)


class ModelRunner(Protocol):
    """What the batcher needs of an engine (the ONNX Runtime `Engine`, or a test's fake)."""

    def run(
        self, kind: GraphPurpose, batch: PaddedBatch, outputs: list[str]
    ) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class BatchStats:
    graph: GraphPurpose
    texts: int
    real_tokens: int
    padded_tokens: int
    inference_s: float
    started_at: float  # time.perf_counter() when the model run began


Row = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]  # pooled, tokens, attentions


@dataclass(frozen=True)
class ItemResult:
    pooled: np.ndarray  # (H,) float32, not normalised
    token_embeddings: np.ndarray | None  # (n, H)
    attentions: np.ndarray | None  # (layers, heads, n, n): every layer and head
    queue_s: float
    batch: BatchStats  # the model batch that carried this text


@dataclass(eq=False)
class WorkItem:
    text: EncodedText
    graph: GraphPurpose
    want_tokens: bool
    deadline: float | None  # time.monotonic() seconds
    future: asyncio.Future[ItemResult]
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def length(self) -> int:
        return self.text.length


class Batcher:
    def __init__(
        self,
        engine: ModelRunner,
        pad_token_id: int,
        max_batch_tokens: int,
        max_batch_texts: int,
        max_wait_ms: float,
        max_queue_texts: int,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.engine = engine
        self.pad_token_id = pad_token_id
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue_texts = max_queue_texts
        self.on_batch = on_batch
        self.pending: list[WorkItem] = []
        self.wakeup = asyncio.Event()
        self.last_batch_texts = 1
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self.pending)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.loop(), name="batcher")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        for item in self.pending:
            if not item.future.done():
                item.future.set_exception(ServiceError(Code.UNAVAILABLE, "server is shutting down"))
        self.pending.clear()
        self.executor.shutdown(wait=True)

    def submit(
        self,
        texts: list[EncodedText],
        graph: GraphPurpose,
        want_tokens: bool,
        deadline: float | None,
    ) -> list[asyncio.Future[ItemResult]]:
        """Queue a request's texts together, or refuse them all when the queue is full."""
        if len(self.pending) + len(texts) > self.max_queue_texts:
            raise ServiceError(
                Code.RESOURCE_EXHAUSTED,
                f"server queue is full ({len(self.pending)} of {self.max_queue_texts} texts "
                "waiting); retry with backoff",
            )
        loop = asyncio.get_running_loop()
        items = [
            WorkItem(text, graph, want_tokens, deadline, loop.create_future()) for text in texts
        ]
        self.pending.extend(items)
        self.wakeup.set()
        return [item.future for item in items]

    async def loop(self) -> None:
        while True:
            await self.wait_for_work()
            batch = self.form_batch()
            if batch:
                await self.execute(batch)

    async def wait_for_work(self) -> None:
        """Return when a batch should start: at once, unless company is surely on its way.

        The last batch's size says how many callers are cycling through the server. A lone
        sequential caller (last batch: 1 text) never waits. Under concurrency the callers just
        answered come back within moments, so the next batch waits up to `max_wait_ms` for as
        many texts as the last one had, instead of running nearly empty while they reconnect.
        """
        while not self.pending:
            self.wakeup.clear()
            await self.wakeup.wait()
        oldest = self.pending[0]
        expected = min(self.last_batch_texts, self.max_batch_texts)
        give_up_at = oldest.enqueued_at + self.max_wait_s
        while (
            self.pending_texts(oldest.graph) < expected
            and self.pending_tokens(oldest.graph) < self.max_batch_tokens
        ):
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                return
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), remaining)
            except TimeoutError:
                return

    def pending_texts(self, graph: GraphPurpose) -> int:
        return sum(1 for item in self.pending if item.graph == graph)

    def pending_tokens(self, graph: GraphPurpose) -> int:
        return sum(item.length for item in self.pending if item.graph == graph)

    def drop_expired(self) -> None:
        now = time.monotonic()
        alive = []
        for item in self.pending:
            if item.future.done():  # the client cancelled: its handler cancelled the future
                continue
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(
                    ServiceError(Code.DEADLINE_EXCEEDED, "deadline passed while queued")
                )
                continue
            alive.append(item)
        self.pending = alive

    def form_batch(self) -> list[WorkItem]:
        """The oldest text plus its nearest neighbours in length, within the budgets."""
        self.drop_expired()
        if not self.pending:
            return []
        oldest = self.pending[0]
        candidates = sorted(
            (item for item in self.pending if item.graph == oldest.graph), key=lambda i: i.length
        )
        at = next(i for i, item in enumerate(candidates) if item is oldest)
        low, high = at, at + 1  # chosen = candidates[low:high], sorted by length
        while high - low < self.max_batch_texts:
            options = []
            if high < len(candidates):  # a longer text: the batch pads to its length
                above = candidates[high]
                options.append((above.length - oldest.length, above.length, "above"))
            if low > 0:  # a shorter text: the longest stays as it is
                below = candidates[low - 1]
                options.append((oldest.length - below.length, candidates[high - 1].length, "below"))
            fitting = [
                o for o in sorted(options) if (high - low + 1) * o[1] <= self.max_batch_tokens
            ]
            if not fitting:
                break
            if fitting[0][2] == "above":
                high += 1
            else:
                low -= 1
        chosen = candidates[low:high]
        chosen_ids = {id(item) for item in chosen}
        self.pending = [item for item in self.pending if id(item) not in chosen_ids]
        return chosen

    async def execute(self, items: list[WorkItem]) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            rows, stats = await loop.run_in_executor(self.executor, self.infer, items)
        except Exception:
            log.exception("inference failed for a batch of %d texts", len(items))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(ServiceError(Code.INTERNAL, "inference failed"))
            return
        finally:
            self.last_batch_texts = len(items)
        for item, (pooled, tokens, maps) in zip(items, rows, strict=True):
            if not item.future.done():
                queue_s = started - item.enqueued_at
                item.future.set_result(ItemResult(pooled, tokens, maps, queue_s, stats))
        if self.on_batch is not None:
            self.on_batch(stats)

    def infer(self, items: list[WorkItem]) -> tuple[list[Row], BatchStats]:
        """Runs on the inference thread: pad, run, slice each text's rows back out."""
        graph = items[0].graph
        batch = pad(
            [item.text.ids for item in items],
            [item.text.type_ids for item in items],
            self.pad_token_id,
        )
        outputs = ["pooled"]
        if any(item.want_tokens for item in items):
            outputs.append("token_embeddings")
        if graph == "maps":
            outputs.append("attentions")
        started = time.perf_counter()
        values = self.engine.run(graph, batch, outputs)
        elapsed = time.perf_counter() - started
        rows: list[Row] = []
        for row, item in enumerate(items):
            n = item.length
            tokens = values["token_embeddings"][row, :n] if item.want_tokens else None
            maps = values["attentions"][:, row, :, :n, :n] if graph == "maps" else None
            rows.append((values["pooled"][row], tokens, maps))
        stats = BatchStats(
            graph, len(items), batch.real_tokens, batch.input_ids.size, elapsed, started
        )
        return rows, stats
