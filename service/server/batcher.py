"""Dynamic batching: texts from many requests merged into model batches on one inference thread.

Each text is a `WorkItem` batched on its own, so a large request is split across model batches
transparently; its request's one future completes when its last text is done, and one
request's failure (a deadline, a caller gone) never touches the texts of others. Each batch
forms around the oldest waiting text (none waits behind younger ones for ever) from the texts
closest to it in length, sized by the engine's measured cost model to do the most real work
per second (`batch_policy.py`), under `max_batch_tokens` padded tokens and `max_batch_texts`
texts.

The inference thread forms the next batch itself the moment the last one finishes, so the
engine never waits for the event loop; the loop only queues texts (`submit`) and hands results
to their callers. A lone caller pays no wait; under concurrency a batch waits up to
`max_wait_ms` for the callers the last batch just answered. The queue is bounded: past
`max_queue_texts` a request is refused, and texts whose deadline passed or whose caller left
never reach the model.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from attnserve.service.artifact import PER_TOKEN_OUTPUTS, GraphPurpose
from attnserve.service.padding import PaddedBatch, pad
from attnserve.service.server.batch_policy import grow_batch
from attnserve.service.server.cost_model import DEFAULT, CostModel
from attnserve.service.server.errors import Code, ServiceError
from attnserve.service.server.tokenizer import EncodedText

log = logging.getLogger(__name__)


class ModelRunner(Protocol):
    """What the batcher needs of an engine (the ONNX Runtime `Engine`, or a test's fake)."""

    def run(
        self, purpose: GraphPurpose, batch: PaddedBatch, outputs: list[str]
    ) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class BatchStats:
    purpose: GraphPurpose
    texts: int
    real_tokens: int
    padded_tokens: int
    inference_s: float
    started_at: float  # time.perf_counter() when the model run began


@dataclass(frozen=True)
class ItemResult:
    pooled: np.ndarray  # (H,) float32, not normalised; a scoring model's (L,) logits (row_output)
    token_embeddings: np.ndarray | None  # (n, H)
    attentions: np.ndarray | None  # (layers, heads, n, n): every layer and head
    queue_s: float
    batch: BatchStats  # the model batch that carried this text
    # The other outputs its request asked for by name (a retrieval head's): a per-token output
    # as the text's (n, ...) rows, a per-text one as its row.
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(eq=False)
class Request:
    """One call's texts: its future gets every text's result, in order, once all are done."""

    future: asyncio.Future[list[ItemResult]]
    results: list[ItemResult | None]
    remaining: int

    def done(self, index: int, result: ItemResult) -> None:
        if self.future.done():  # failed or cancelled meanwhile
            return
        self.results[index] = result
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.results)  # type: ignore[arg-type]  # none is None now


@dataclass(eq=False)
class WorkItem:
    text: EncodedText
    purpose: GraphPurpose
    token_embeddings: bool  # its request asked for per-token vectors
    deadline: float | None  # time.monotonic() seconds
    request: Request
    index: int  # the text's place in its request
    extra: tuple[str, ...] = ()  # other graph outputs its request asked for, by name
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def length(self) -> int:
        return self.text.length

    @property
    def abandoned(self) -> bool:
        """Its request already failed, or its caller left (the handler cancelled the future)."""
        return self.request.future.done()


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
        on_depth: Callable[[int], None] | None = None,
        row_output: str = "pooled",
    ) -> None:
        self.engine = engine
        # The graph output holding each row's vector: "pooled", or a cross-encoder's "scores"
        # (a head is pooling's variation: Manifest.row_output).
        self.row_output = row_output
        self.pad_token_id = pad_token_id
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue_texts = max_queue_texts
        self.on_batch = on_batch
        self.on_depth = on_depth  # told the queue's depth as it changes (a gauge's setter)
        # Measured per graph at warm-up (`Engine.calibrate`, handed to `start`); a CPU-like
        # stand-in for a graph without one.
        self.costs: dict[GraphPurpose, CostModel] = {}
        # `pending` (arrival order), `last_batch_texts` and `stopping` are shared between the
        # event loop and the inference thread: only touched with `changed` held.
        self.changed = threading.Condition()
        self.pending: list[WorkItem] = []
        self.last_batch_texts = 1
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        # Wake-ups and deliveries are merged: requests that arrive in one turn of the event
        # loop wake the inference thread once, and results that finish while the loop is busy
        # reach it in one hand-off (each is a system call and a thread switch).
        self.wake_scheduled = False
        self.outbox: list[Callable[[], None]] = []  # guarded by `changed`

    @property
    def depth(self) -> int:
        return len(self.pending)

    # --- the event loop's side ----------------------------------------------------------------

    def start(self, costs: dict[GraphPurpose, CostModel] | None = None) -> None:
        """Start the inference thread, batching by these measured `costs` (none: stand-ins)."""
        self.costs = dict(costs or {})
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self.run_forever, name="inference", daemon=True)
        self.thread.start()

    async def stop(self) -> None:
        """Finish the batch in progress, then fail whatever still waits (UNAVAILABLE)."""
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join)
        with self.changed:
            left, self.pending = self.pending, []
        self.fail(left, ServiceError(Code.UNAVAILABLE, "server is shutting down"))

    def submit(
        self,
        texts: list[EncodedText],
        purpose: GraphPurpose,
        token_embeddings: bool,
        deadline: float | None,
        extra: tuple[str, ...] = (),
    ) -> asyncio.Future[list[ItemResult]]:
        """Queue a request's texts together, or refuse them all when the queue is full;
        `extra`: graph outputs besides the row output each text's result carries by name.

        The future is the request's: its result is every text's, in order. Cancelling it
        (the caller left) drops the texts not yet run."""
        loop = self.loop = asyncio.get_running_loop()
        with self.changed:
            self.check_room(len(texts))
            request = Request(loop.create_future(), [None] * len(texts), len(texts))
            self.pending.extend(
                WorkItem(text, purpose, token_embeddings, deadline, request, index, extra)
                for index, text in enumerate(texts)
            )
            if self.on_depth is not None:
                self.on_depth(len(self.pending))
        if not self.wake_scheduled:
            self.wake_scheduled = True
            loop.call_soon(self.wake)
        return request.future

    def check_room(self, texts: int) -> None:
        """RESOURCE_EXHAUSTED unless the queue holds `texts` more (the same words whether asked
        before tokenising or when queueing)."""
        waiting = len(self.pending)
        if waiting + texts > self.max_queue_texts:
            raise ServiceError(
                Code.RESOURCE_EXHAUSTED,
                f"server queue is full ({waiting} of {self.max_queue_texts} texts waiting); "
                "retry with backoff",
            )

    def wake(self) -> None:
        """On the loop, once per turn with new texts: let the inference thread see them."""
        self.wake_scheduled = False
        with self.changed:
            self.changed.notify()

    def drain_outbox(self) -> None:
        """On the loop: hand over everything the inference thread finished since last time."""
        with self.changed:
            ready, self.outbox = self.outbox, []
        for hand_over in ready:
            hand_over()

    def deliver(self, items: list[WorkItem], results: list[ItemResult], stats: BatchStats) -> None:
        """On the loop: each text's result to its request (unless that already ended)."""
        for item, result in zip(items, results, strict=True):
            item.request.done(item.index, result)
        if self.on_batch is not None:
            self.on_batch(stats)

    @staticmethod
    def fail(items: list[WorkItem], error: ServiceError) -> None:
        """On the loop: the requests of these texts fail with `error` (their other texts are
        dropped before they run)."""
        for item in items:
            if not item.abandoned:
                item.request.future.set_exception(error)

    # --- the inference thread's side ----------------------------------------------------------

    def run_forever(self) -> None:
        name_native_thread(b"attnserve-infer")
        while True:
            with self.changed:
                batch = self.next_batch()
            if batch is None:
                return
            try:
                results, stats = self.infer(batch)
            except Exception:
                log.exception("inference failed for a batch of %d texts", len(batch))
                failed = ServiceError(Code.INTERNAL, "inference failed")
                self.post(functools.partial(self.fail, batch, failed))
                continue
            self.post(functools.partial(self.deliver, batch, results, stats))

    def post(self, hand_over: Callable[[], None]) -> None:
        """From the inference thread: queue a hand-over; wake the loop only if none is queued."""
        assert self.loop is not None
        with self.changed:
            first = not self.outbox
            self.outbox.append(hand_over)
        if first:
            self.loop.call_soon_threadsafe(self.drain_outbox)

    def next_batch(self) -> list[WorkItem] | None:
        """With `changed` held: wait for work (and company), then take a batch; None to stop."""
        while True:
            while not self.pending and not self.stopping:
                self.changed.wait()
            if self.stopping:
                return None
            while (delay := self.company_delay(time.monotonic())) > 0 and not self.stopping:
                self.changed.wait(delay)
            batch = self.form_batch()
            if batch:
                self.last_batch_texts = len(batch)
                return batch

    def company_delay(self, now: float) -> float:
        """Seconds to wait for company before the next batch starts: 0 to start at once.

        The last batch's size says how many callers are cycling through the server. A lone
        sequential caller (last batch: 1 text) never waits. Under concurrency the callers just
        answered come back within moments, so the next batch waits up to `max_wait_ms` (from
        its oldest text's arrival) for as many texts as the last one had, instead of running
        nearly empty while they reconnect.
        """
        if not self.pending:
            return 0.0
        oldest = self.pending[0]
        same = [item for item in self.pending if item.purpose == oldest.purpose]
        expected = min(self.last_batch_texts, self.max_batch_texts)
        if len(same) >= expected or sum(i.length for i in same) >= self.max_batch_tokens:
            return 0.0
        return max(0.0, oldest.enqueued_at + self.max_wait_s - now)

    def drop_expired(self) -> None:
        """Texts whose caller left are forgotten; those past their deadline fail on the loop."""
        now = time.monotonic()
        alive, expired = [], []
        for item in self.pending:
            if item.abandoned:
                continue
            if item.deadline is not None and now >= item.deadline:
                expired.append(item)
                continue
            alive.append(item)
        self.pending = alive
        if expired:
            late = ServiceError(Code.DEADLINE_EXCEEDED, "deadline passed while queued")
            self.outbox.append(functools.partial(self.fail, expired, late))
            if len(self.outbox) == 1 and self.loop is not None:
                self.loop.call_soon_threadsafe(self.drain_outbox)

    def form_batch(self) -> list[WorkItem]:
        """The oldest text and its neighbours in length, as the cost model sizes the batch."""
        self.drop_expired()
        if not self.pending:
            return []
        oldest = self.pending[0]
        candidates = sorted(
            (item for item in self.pending if item.purpose == oldest.purpose),
            key=lambda i: i.length,
        )
        anchor = next(i for i, item in enumerate(candidates) if item is oldest)
        low, high = grow_batch(
            [item.length for item in candidates],
            anchor,
            self.costs.get(oldest.purpose, DEFAULT),
            self.max_batch_texts,
            self.max_batch_tokens,
        )
        chosen = candidates[low:high]
        chosen_ids = {id(item) for item in chosen}
        self.pending = [item for item in self.pending if id(item) not in chosen_ids]
        if self.on_depth is not None:
            self.on_depth(len(self.pending))
        return chosen

    def infer(self, items: list[WorkItem]) -> tuple[list[ItemResult], BatchStats]:
        """Pad, run, slice each text's rows back out (no lock held: submit goes on meanwhile)."""
        dequeued = time.monotonic()
        purpose = items[0].purpose
        batch = pad(
            [item.text.ids for item in items],
            [item.text.type_ids for item in items],
            self.pad_token_id,
        )
        for row, item in enumerate(items):  # a ColBERT query's unattended expansion
            if item.text.attention is not None:
                batch.attention_mask[row, : item.length] = item.text.attention
        outputs = [self.row_output]
        if any(item.token_embeddings for item in items):
            outputs.append("token_embeddings")
        if purpose == "maps":
            outputs.append("attentions")
        extra = sorted({name for item in items for name in item.extra} - set(outputs))
        outputs += extra
        started = time.perf_counter()
        values = self.engine.run(purpose, batch, outputs)
        elapsed = time.perf_counter() - started
        stats = BatchStats(
            purpose, len(items), batch.real_tokens, batch.input_ids.size, elapsed, started
        )
        results = []
        for row, item in enumerate(items):
            n = item.length
            tokens = values["token_embeddings"][row, :n] if item.token_embeddings else None
            maps = values["attentions"][:, row, :, :n, :n] if purpose == "maps" else None
            queue_s = dequeued - item.enqueued_at
            vector = values[self.row_output][row]
            asked = {
                name: values[name][row, :n] if name in PER_TOKEN_OUTPUTS else values[name][row]
                for name in item.extra
            }
            results.append(ItemResult(vector, tokens, maps, queue_s, stats, asked))
        return results, stats


def name_native_thread(name: bytes) -> None:
    """Give the OS thread a name (Linux), so top -H and /proc show which thread is inference;
    elsewhere, or if it fails, nothing happens."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
