"""What a request's stages took: the one record every task's answer carries and every protocol
reports (attnserve.v1's `Timings`, OIP's statistics, the traces)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    queue_s: float
    tokenize_s: float
    inference_s: float  # summed over the model batches that carried the request's texts
    batches: int = 1  # how many model batches that was
