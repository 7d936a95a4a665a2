"""ONNX Runtime sessions, opened one way everywhere.

The server, export's parity checks and quality gate, the benchmarks and the tests all open
sessions here, so they agree on threads, thread spinning and the optimisation level. Spinning
matters on few cores: a spinning pool answers the next small batch ~1 ms sooner, but steals the
core from whatever runs next (a paired benchmark, the gRPC thread); see docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

OPT_LEVELS = {
    "ORT_DISABLE_ALL": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "ORT_ENABLE_BASIC": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "ORT_ENABLE_EXTENDED": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "ORT_ENABLE_ALL": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CPU_ONLY = ("CPUExecutionProvider",)


def session_options(
    threads: int = 0, spinning: bool = False, level: str = "ORT_ENABLE_ALL"
) -> ort.SessionOptions:
    """`threads` intra-op threads (0 = ONNX Runtime's default, one per core), one inter-op
    thread, sequential execution; idle threads spin only when asked."""
    options = ort.SessionOptions()
    options.graph_optimization_level = OPT_LEVELS[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def open_session(
    path: Path,
    *,
    threads: int = 0,
    spinning: bool = False,
    level: str = "ORT_ENABLE_ALL",
    providers: Sequence[str] = CPU_ONLY,
    provider_options: Sequence[dict[str, Any]] | None = None,
) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path),
        session_options(threads, spinning, level),
        providers=list(providers),
        provider_options=list(provider_options) if provider_options is not None else None,
    )
