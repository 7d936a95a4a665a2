"""ONNX Runtime sessions over the artifact's graphs: providers, threads, I/O binding, warm-up.

The fast graph answers embedding requests and never computes attention probabilities; the maps
graph (always fp32, so maps are exact) answers the requests that ask for them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from itertools import product
from pathlib import Path

import numpy as np
import onnxruntime as ort

from attnserve.service.artifact import (
    ExecutionProvider,
    GraphPurpose,
    GraphSpec,
    Manifest,
    Precision,
)
from attnserve.service.padding import INPUT_NAMES, PaddedBatch
from attnserve.service.server.cost_model import CALIBRATION_SHAPES, CostModel
from attnserve.service.server.errors import StartupError
from attnserve.service.server.settings import Provider
from attnserve.service.server.startup_errors import ExitCode
from attnserve.service.sessions import open_session

log = logging.getLogger(__name__)

CUDA: ExecutionProvider = "CUDAExecutionProvider"
CPU: ExecutionProvider = "CPUExecutionProvider"


class EngineError(StartupError):
    """The engine cannot start with these settings (the provider or precision asked for)."""

    exit_code = ExitCode.PROVIDER


def provider_options(
    providers: list[ExecutionProvider], purpose: GraphPurpose, allow_tf32: bool
) -> list[dict[str, str]]:
    """Options per provider for one graph. CUDA runs fp32 matrix products in TF32 unless told
    not to (10-bit mantissas: attention maps off by up to 3e-2 on an H200); the maps graph never
    may, the fast graph only when `allow_tf32` says so."""
    options = []
    for provider in providers:
        if provider == CUDA:
            tf32 = allow_tf32 and purpose == "fast"
            options.append({"use_tf32": "1" if tf32 else "0"})
        else:
            options.append({})
    return options


def choose_providers(requested: Provider) -> list[ExecutionProvider]:
    available = ort.get_available_providers()
    if requested == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if requested == "cuda":
        raise EngineError(f"--provider cuda: onnxruntime offers only {available}")
    return [CPU]


def check_inputs(specs: Iterable[GraphSpec]) -> None:
    """Every input a graph takes must be one a padded batch provides."""
    for spec in specs:
        unknown = [name for name in spec.inputs if name not in INPUT_NAMES]
        if unknown:
            raise EngineError(
                f"{spec.file} takes input(s) {unknown} that attnserve cannot feed "
                f"(it feeds {', '.join(INPUT_NAMES)})"
            )


class Engine:
    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        precision: Precision,
        provider: Provider,
        intra_op_threads: int,
        spin_wait: bool = True,
        allow_tf32: bool = False,
    ) -> None:
        self.precision = precision
        self.spin_wait = spin_wait
        self.allow_tf32 = allow_tf32
        self.providers = choose_providers(provider)
        self.on_cuda = self.providers[0] == CUDA
        if precision == "fp16" and not self.on_cuda:
            raise EngineError("--precision fp16 needs the CUDA execution provider")
        self.threads = intra_op_threads or os.cpu_count() or 1
        # Warm-up and calibration shapes never exceed what the model can hold: a small model's
        # position table (fewer than 128 rows) would otherwise fail the server's start.
        self.max_tokens = manifest.model.max_positions
        self.row_output = manifest.row_output  # "pooled", or a cross-encoder's "scores"
        fast = manifest.graph("fast", precision)
        if fast is None:
            have = ", ".join(f"{g.purpose}/{g.precision}" for g in manifest.graphs)
            raise EngineError(f"the artifact has no fast {precision} graph (it has: {have})")
        self.specs: dict[GraphPurpose, GraphSpec] = {"fast": fast}
        maps = manifest.graph("maps", "fp32")
        if maps is not None:
            self.specs["maps"] = maps
        check_inputs(self.specs.values())
        self.sessions = {
            purpose: self.open_session(directory / spec.file, spec)
            for purpose, spec in self.specs.items()
        }
        if provider == "cuda" and self.provider != CUDA:
            # onnxruntime falls back to the CPU (with a warning) when the CUDA provider is
            # listed but cannot load (no device, a missing library): refuse rather than serve a
            # GPU deployment on its CPU.
            raise EngineError(
                f"--provider cuda: the session runs on {self.provider}: the CUDA provider "
                "could not load (no GPU visible, or its CUDA/cuDNN libraries are missing)"
            )
        log.info(
            "engine: provider %s, precision %s, %d intra-op threads, graphs %s",
            self.sessions["fast"].get_providers()[0],
            precision,
            self.threads,
            {purpose: spec.file for purpose, spec in self.specs.items()},
        )

    @property
    def provider(self) -> str:
        return str(self.sessions["fast"].get_providers()[0])

    def open_session(self, path: Path, spec: GraphSpec) -> ort.InferenceSession:
        return open_session(
            path,
            threads=self.threads,
            spinning=self.spin_wait,
            level=spec.graph_optimization_level,
            providers=self.providers,
            provider_options=provider_options(self.providers, spec.purpose, self.allow_tf32),
        )

    def supports_maps(self) -> bool:
        return "maps" in self.sessions

    def run(
        self, purpose: GraphPurpose, batch: PaddedBatch, outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """One forward pass; returns only the requested outputs, as CPU numpy arrays."""
        feeds = batch.feeds(self.specs[purpose].inputs)  # exactly the inputs this graph takes
        session = self.sessions[purpose]
        if self.on_cuda:
            return self.run_bound(session, feeds, outputs)
        values = session.run(outputs, feeds)
        return dict(zip(outputs, values, strict=True))

    def run_bound(
        self, session: ort.InferenceSession, feeds: dict[str, np.ndarray], outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """CUDA: inputs copied once, outputs nobody asked for never leave the device."""
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for output in session.get_outputs():
            binding.bind_output(output.name, "cpu" if output.name in outputs else "cuda")
        session.run_with_iobinding(binding)
        names = [output.name for output in session.get_outputs()]
        values = binding.get_outputs()
        return {
            name: value.numpy()
            for name, value in zip(names, values, strict=True)
            if name in outputs
        }

    def calibrate(self, repeats: int = 3) -> dict[GraphPurpose, CostModel]:
        """Time typical shapes on each graph (best of `repeats`) and fit its cost model."""
        models = {}
        for purpose in self.sessions:
            row = self.row_output
            outputs = [row, "attentions"] if purpose == "maps" else [row]
            timings = []
            for size, seq_len in self.shapes(CALIBRATION_SHAPES):
                batch = synthetic_batch(size, seq_len)
                best = float("inf")
                for _ in range(repeats):
                    started = time.perf_counter()
                    self.run(purpose, batch, outputs)
                    best = min(best, time.perf_counter() - started)
                timings.append(best)
            models[purpose] = CostModel.fit(self.shapes(CALIBRATION_SHAPES), timings)
        return models

    def shapes(self, shapes: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        """(batch, tokens) shapes with the tokens capped at the model's position table."""
        return tuple((size, min(seq_len, self.max_tokens)) for size, seq_len in shapes)

    def warm_up(
        self, lengths: tuple[int, ...] = (8, 32, 128), batch_sizes: tuple[int, ...] = (1, 8)
    ) -> None:
        """Run typical shapes once so the first real request does not pay for allocation."""
        for purpose, spec in self.specs.items():
            for size, seq_len in self.shapes(tuple(product(batch_sizes, lengths))):
                self.run(purpose, synthetic_batch(size, seq_len), list(spec.outputs))


def synthetic_batch(size: int, seq_len: int) -> PaddedBatch:
    """A batch of real-looking ids (no padding) for warm-up and calibration."""
    ones = np.ones((size, seq_len), dtype=np.int64)
    return PaddedBatch(ones * 100, ones, np.zeros_like(ones))
