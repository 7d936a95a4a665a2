"""What `ModelStatistics` reports per model: cumulative counts and durations since the server
started, as Triton keeps them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from attnserve.oip import inference_pb2 as oip
from attnserve.service.server.timings import Timings


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)

    def message(self) -> oip.StatisticDuration:
        return oip.StatisticDuration(count=self.count, ns=self.ns)


@dataclass
class Statistics:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    tokenize: Duration = field(default_factory=Duration)
    inference: Duration = field(default_factory=Duration)
    output: Duration = field(default_factory=Duration)
    texts: int = 0
    batches: int = 0
    last_ms: int = 0

    def succeeded(self, seconds: float, timings: Timings, texts: int, output_s: float) -> None:
        self.success.add(seconds)
        self.queue.add(timings.queue_s)
        self.tokenize.add(timings.tokenize_s)
        self.inference.add(timings.inference_s)
        self.output.add(output_s)
        self.texts += texts
        self.batches += timings.batches
        self.last_ms = int(time.time() * 1000)

    def message(self, name: str, version: str) -> oip.ModelStatistics:
        return oip.ModelStatistics(
            name=name,
            version=version,
            last_inference=self.last_ms,
            inference_count=self.texts,
            execution_count=self.batches,
            inference_stats=oip.InferStatistics(
                success=self.success.message(),
                fail=self.fail.message(),
                queue=self.queue.message(),
                compute_input=self.tokenize.message(),
                compute_infer=self.inference.message(),
                compute_output=self.output.message(),
            ),
        )
